// test_driver._core: the Python face of the C++ core. This layer converts
// types, releases the GIL around every blocking call, translates errors and
// attaches docstrings. The script runtime (the test script's symbols,
// subtests, polling_condition, the command line's work) is plain Python in
// python/test_driver, built on these primitives.
#include <pybind11/functional.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include "test_driver/driver.h"
#include "test_driver/errors.h"
#include "test_driver/interrupt.h"
#include "test_driver/junit.h"
#include "test_driver/keys.h"
#include "test_driver/logger.h"
#include "test_driver/machine.h"
#include "test_driver/polling_condition.h"
#include "test_driver/retry.h"
#include "test_driver/start_command.h"
#include "test_driver/vlan.h"

#include "duration_caster.h"
#include "log_nest.h"
#include "script_line.h"
#include "efi_bindings.h"
#include "machine_bindings.h"

namespace py = pybind11;
using namespace py::literals;
using td_bindings::LogNest;
using td_bindings::to_attributes;
using td_bindings::ScriptLineGuard;
using td_bindings::current_script_line;
using td_bindings::set_script_file;

namespace {

// The script's line is taken before the GIL goes (script_line.h).
using release_gil = py::call_guard<ScriptLineGuard, py::gil_scoped_release>;


// The core sets QEMU_VDE_SOCKET_<nr> in the process environment; mirror it
// in os.environ, which Python only reads at start-up.
void mirror_vlan_environment(const td::VLan& v) {
  py::module_::import("os").attr("environ")[py::str("QEMU_VDE_SOCKET_" + std::to_string(v.nr()))] =
      v.socket_dir().string();
}

// The core's errors raise the classes of test_driver.errors (plain Python).
void register_exceptions() {
  py::module_ errors = py::module_::import("test_driver.errors");
  // Kept alive for the process's lifetime, as the translator may run at exit.
  auto keep = [&](const char* name) { return py::object(errors.attr(name)).release().ptr(); };
  static PyObject* classes[5] = {keep("Error"), keep("MachineError"), keep("RequestedAssertionFailed"),
                                 keep("PollingConditionFailed"), keep("QMPAPIError")};
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const td::Interrupted&) {
      td::interrupt::clear();
      if (PyErr_CheckSignals() == 0) PyErr_SetNone(PyExc_KeyboardInterrupt);
    } catch (const td::QmpError& e) {
      // With QEMU's error class and description as attributes, as upstream's.
      auto or_none = [](const std::string& text) -> py::object {
        return text.empty() ? py::object(py::none()) : py::object(py::str(text));
      };
      py::object error = py::reinterpret_borrow<py::object>(classes[4])(
          e.what(), "class_name"_a = or_none(e.class_name), "description"_a = or_none(e.description));
      PyErr_SetObject(classes[4], error.ptr());
    } catch (const td::PollingConditionFailed& e) {
      PyErr_SetString(classes[3], e.what());
    } catch (const td::RequestedAssertionFailed& e) {
      PyErr_SetString(classes[2], e.what());
    } catch (const td::MachineError& e) {
      PyErr_SetString(classes[1], e.what());
    } catch (const td::Error& e) {
      PyErr_SetString(classes[0], e.what());
    }
  });
}

}  // namespace

namespace td_bindings {

std::shared_ptr<td::LegacyStartCommand> make_legacy_start_command(const py::dict& args) {
  td::LegacyStartCommand::Options o;
  auto get = [&](const char* key) -> std::optional<std::string> {
    if (!args.contains(key) || args[key].is_none()) return std::nullopt;
    return py::str(args[key]).cast<std::string>();
  };
  o.net_backend_args = get("netBackendArgs");
  o.net_frontend_args = get("netFrontendArgs");
  if (args.contains("hda") && !args["hda"].is_none()) {
    py::object hda = args["hda"];
    if (py::isinstance<py::tuple>(hda)) {
      o.hda_path = py::str(hda.cast<py::tuple>()[0]);
      o.hda_interface = py::str(hda.cast<py::tuple>()[1]);
    } else {
      o.hda_path = py::str(hda);
      o.hda_interface = get("hdaInterface").value_or("");
    }
  }
  o.cdrom = get("cdrom");
  o.usb = get("usb");
  o.bios = get("bios");
  o.qemu_binary = get("qemuBinary");
  o.qemu_flags = get("qemuFlags");
  return std::make_shared<td::LegacyStartCommand>(o);
}

}  // namespace td_bindings

PYBIND11_MODULE(_core, m) {
  m.doc() = "The C++ core of the NixOS test driver.";
  register_exceptions();

  // Ctrl-C must cut blocking waits short: let Python's signal handling wake
  // them through the core's interrupt pipe, unless someone else uses the
  // wakeup fd already.
  {
    // _signal, not signal: the latter imports enum, a tenth of the start-up.
    py::module_ signal = py::module_::import("_signal");
    try {
      int old = signal.attr("set_wakeup_fd")(td::interrupt::write_fd()).cast<int>();
      if (old != -1) signal.attr("set_wakeup_fd")(old);
    } catch (py::error_already_set& e) {
      // ValueError: not the main thread, whose wakeup fd is not ours to set.
      if (!e.matches(PyExc_ValueError)) throw;
    }
  }

  m.def("clear_interrupt", &td::interrupt::clear,
        "Forget a Ctrl-C that no wait consumed (the REPL calls it before each command).");

  // --- logger
  py::class_<LogNest>(m, "LogNest", "A log nest as a context manager.")
      .def("__enter__", [](LogNest& n) { n.enter(); })
      .def("__exit__", [](LogNest& n, py::args args) {
        n.exit(args.size() > 0 && !args[0].is_none());
        return false;
      });
  py::class_<td::Logger, std::unique_ptr<td::Logger, py::nodelete>>(m, "Logger",
                                                                    "The driver's log: terminal and XML log file.")
      .def(py::init([] { return &td::rootlog(); }), "A handle on the process-wide log (there is one).")
      .def("log", [](td::Logger& l, const std::string& msg, py::object attrs) { l.log(msg, to_attributes(attrs)); },
           "message"_a, "attributes"_a = py::none(), "Log a line.")
      .def("info", [](td::Logger& l, const std::string& msg, py::object attrs) { l.info(msg, to_attributes(attrs)); },
           "message"_a, "attributes"_a = py::none(), "Log an informational line.")
      .def("warning", [](td::Logger& l, const std::string& msg, py::object attrs) { l.warning(msg, to_attributes(attrs)); },
           "message"_a, "attributes"_a = py::none(), "Log a warning.")
      .def("error", [](td::Logger& l, const std::string& msg, py::object attrs) { l.error(msg, to_attributes(attrs)); },
           "message"_a, "attributes"_a = py::none(), "Log an error (raising is the caller's business).")
      .def("debug", [](td::Logger& l, const std::string& msg, py::object attrs) { l.debug(msg, to_attributes(attrs)); },
           "message"_a, "attributes"_a = py::none(), "Log a debug line (shown with --log-level debug).")
      .def("log_serial", py::overload_cast<const std::string&, const std::string&>(&td::Logger::log_serial), "message"_a,
           "machine"_a, "Log one serial console line of a machine.")
      .def_property(
          "level", [](const td::Logger& l) { return std::string(td::log_level_name(l.level())); },
          [](td::Logger& l, const std::string& name) {
            auto level = td::parse_log_level(name);
            if (!level) throw py::value_error("invalid log level '" + name + "': use debug, info, warning or error");
            l.set_level(*level);
          },
          "The lowest level shown on the terminal: 'debug', 'info' (default), 'warning' or 'error'.")
      .def("open_junit", [](td::Logger& l, const std::filesystem::path& path,
                            const std::string& suite_name) { l.open_junit(path, suite_name); },
           "path"_a, "suite_name"_a = td::JUnitReport::kDefaultSuiteName,
           "Start a JUnit XML report (one case per subtest), written to path by close().")
      .def_property_readonly("has_junit", &td::Logger::has_junit, "Whether a JUnit report is attached.")
      .def_property_readonly("write_error", &td::Logger::write_error,
                             "Why the XML log could not be written to the end (a full disk), or \"\" when it lost "
                             "nothing; the run must then fail.")
      .def(
          "begin_subtest",
          [](td::Logger& l, const std::string& name) {
            td::RunRecord::ScriptLine line(current_script_line());
            l.begin_subtest(name);
          },
          "name"_a, "Open a subtest: a nest in the log, and a case of the JUnit report.")
      .def("end_subtest", &td::Logger::end_subtest, "failed"_a = false,
           "Close the innermost subtest (failed: an exception left it).")
      .def("open_html_report", [](td::Logger& l, const std::filesystem::path& path,
                                  const std::string& title) { l.open_html_report(path, title); },
           "path"_a, "title"_a = "NixOS integration test",
           "Start an HTML report of the run (steps, serial consoles, screenshots, timing), written to path by close().")
      .def_property_readonly("has_html_report", &td::Logger::has_html_report, "Whether an HTML report is attached.")
      .def("set_outcome", &td::Logger::set_outcome, "outcome"_a, "message"_a = "",
           "How the run ended, for the HTML report: 'passed', 'failed', 'timed out' or 'interrupted', and why.")
      .def(
          "set_script_path",
          [](td::Logger& l, const std::string& path) {
            set_script_file(path);
            l.set_script_path(path);
          },
          "path"_a, "The test script's file: steps made from its lines carry them (timing profile, HTML report).")
      .def("timing_profile", &td::Logger::timing_profile,
           "The timing profile of the run so far, as lines: per machine the time in boot, commands, waits "
           "(and polling), and the slowest steps with their line in the test script.")
      .def_property_readonly("in_subtest", &td::Logger::in_subtest,
                             "Whether the JUnit report has a subtest open (a problem would go to it, not to 'main').")
      .def(
          "record_problem",
          [](td::Logger& l, const std::string& kind, std::string type, std::string message, std::string details) {
            td::JUnitProblem problem;
            if (kind == "failure")
              problem.kind = td::JUnitProblem::Kind::failure;
            else if (kind == "error")
              problem.kind = td::JUnitProblem::Kind::error;
            else
              throw py::value_error("kind must be 'failure' or 'error', not '" + kind + "'");
            problem.type = std::move(type);
            problem.message = std::move(message);
            problem.details = std::move(details);
            l.record_problem(problem);
          },
          "kind"_a, "type"_a, "message"_a, "details"_a = "",
          "Record a 'failure' or an 'error' (type: a class name; details: a traceback) on the JUnit report's "
          "current case (the open subtest, else 'main'); the first of a case is kept, later ones add a line to "
          "its details. Nothing without a report.")
      .def("nested",
           [](td::Logger&, const std::string& msg, py::object attrs) { return LogNest{msg, to_attributes(attrs)}; },
           "message"_a, "attributes"_a = py::none(),
           "Context manager: a nest in the log, closed with '(finished: …, in N.NN seconds)'.")
      .def("close", &td::Logger::close, "Close the XML log, well-formed.")
      .def("open", &td::Logger::open, "path"_a, "Start a new XML log at path.")
      .def_property("_print_serial_logs", &td::Logger::print_serial, &td::Logger::set_print_serial,
                    "Whether serial console lines are printed on the terminal.");

  // --- retry
  m.def(
      "retry",
      [](py::function fn, td::Duration timeout) {
        std::function<bool(bool)> call = [fn](bool last_try) {
          py::gil_scoped_acquire gil;
          return py::bool_(fn(last_try)).cast<bool>();
        };
        ScriptLineGuard line;
        py::gil_scoped_release release;
        td::retry(call, timeout);
      },
      "fn"_a, "timeout"_a = td::kDefaultTimeout,
      "Call fn(last_try) until it returns True; raise after `timeout` seconds. The last call gets last_try=True. "
      "Between calls it pauses a sixteenth of the time waited so far: at least 20 ms and as long as the last call "
      "took, at most one second.");

  // --- polling conditions
  py::class_<td::PollingCondition, std::shared_ptr<td::PollingCondition>>(m, "PollingCondition",
                                                                          "A condition that must hold while a test runs.")
      .def(py::init<std::function<bool()>, double, std::string>(), "condition"_a, "seconds_interval"_a,
           "description"_a, "condition() returns whether it holds; it is called with the GIL held.")
      .def("check", &td::PollingCondition::check, "force"_a = false, release_gil(),
           "Run the condition if due (or force); True when it holds.")
      .def("maybe_raise", &td::PollingCondition::maybe_raise, release_gil(),
           "Run the condition if due; raise PollingConditionFailed when it does not hold.")
      .def("status_message", &td::PollingCondition::status_message, "status"_a)
      .def_property_readonly("nested_message", &td::PollingCondition::nested_message)
      .def_property_readonly("overdue", &td::PollingCondition::overdue)
      .def_property_readonly("entered", &td::PollingCondition::entered)
      .def_property_readonly("seconds_interval", &td::PollingCondition::seconds_interval)
      .def_property_readonly("description", &td::PollingCondition::description);

  // --- start commands
  py::class_<td::StartCommand, std::shared_ptr<td::StartCommand>>(m, "StartCommand",
                                                                  "How a machine's QEMU is started.")
      .def("cmd", &td::StartCommand::cmd, "monitor_socket_path"_a, "shell_socket_path"_a, "allow_reboot"_a = false,
           "The full QEMU command line, shell-quoted.")
      .def("argv", &td::StartCommand::argv, "monitor_socket_path"_a, "shell_socket_path"_a, "allow_reboot"_a = false,
           "qmp_socket_path"_a = "", "The full QEMU argument vector.")
      .def_static(
          "build_environment",
          [](const std::string& state_dir, const std::string& shared_dir) {
            py::dict env;
            for (const auto& entry : td::StartCommand::build_environment(state_dir, shared_dir)) {
              auto eq = entry.find('=');
              env[py::str(entry.substr(0, eq))] = entry.substr(eq + 1);
            }
            return env;
          },
          "state_dir"_a, "shared_dir"_a, "The environment QEMU runs in.")
      .def_property_readonly("_cmd", &td::StartCommand::base_command);
  py::class_<td::NixStartScript, td::StartCommand, std::shared_ptr<td::NixStartScript>>(
      m, "NixStartScript", "A run-<name>-vm start script of NixOS's qemu-vm module.")
      .def(py::init<std::string>(), "script"_a)
      .def_property_readonly("machine_name", &td::NixStartScript::machine_name,
                             "<name> from run-<name>-vm, else 'machine'.");
  py::class_<td::LegacyStartCommand, td::StartCommand, std::shared_ptr<td::LegacyStartCommand>>(
      m, "LegacyStartCommand", "The legacy ad-hoc QEMU command of create_machine().")
      .def(py::init([](py::object netBackendArgs, py::object netFrontendArgs, py::object hda, py::object cdrom,
                       py::object usb, py::object bios, py::object qemuBinary, py::object qemuFlags) {
             py::dict args("netBackendArgs"_a = netBackendArgs, "netFrontendArgs"_a = netFrontendArgs, "hda"_a = hda,
                           "cdrom"_a = cdrom, "usb"_a = usb, "bios"_a = bios, "qemuBinary"_a = qemuBinary,
                           "qemuFlags"_a = qemuFlags);
             return td_bindings::make_legacy_start_command(args);
           }),
           "netBackendArgs"_a = py::none(), "netFrontendArgs"_a = py::none(), "hda"_a = py::none(),
           "cdrom"_a = py::none(), "usb"_a = py::none(), "bios"_a = py::none(), "qemuBinary"_a = py::none(),
           "qemuFlags"_a = py::none());

  // --- machines (machine_bindings.cc)
  td_bindings::bind_machines(m);
  td_bindings::bind_efi(m);

  // --- VLANs
  py::class_<td::VLan, std::shared_ptr<td::VLan>>(m, "VLan", "A virtual LAN: one vde_switch.")
      .def(py::init([](int nr, std::filesystem::path tmp_dir) {
             std::shared_ptr<td::VLan> v;
             {
               ScriptLineGuard line;
               py::gil_scoped_release release;
               v = std::make_shared<td::VLan>(nr, tmp_dir);
             }
             mirror_vlan_environment(*v);
             return v;
           }),
           "nr"_a, "tmp_dir"_a)
      .def("__repr__", [](const td::VLan& v) { return "<Vlan Nr. " + std::to_string(v.nr()) + ">"; })
      .def_property_readonly("nr", &td::VLan::nr)
      .def_property_readonly("socket_dir", &td::VLan::socket_dir)
      .def_property_readonly("pid", &td::VLan::pid)
      .def("stop", &td::VLan::stop, release_gil(), "Stop the switch.");

  // --- the driver
  m.def("get_tmp_dir", &td::get_tmp_dir, "The driver's temporary directory ($TMPDIR, $TEMP, $TMP or /tmp).");
  py::class_<td::Driver, std::shared_ptr<td::Driver>>(m, "Driver",
                                                      "The core of test_driver.driver.Driver: the machines, VLANs "
                                                      "and polling conditions of one run.")
      .def(py::init([](py::object start_scripts, py::object vlans, std::string tests, std::filesystem::path out_dir,
                       bool keep_vm_state) {
             std::vector<std::string> scripts;
             std::vector<int> vlan_numbers;
             if (!start_scripts.is_none())
               for (auto s : start_scripts) scripts.push_back(py::str(s));
             if (!vlans.is_none())
               for (auto v : vlans) vlan_numbers.push_back(py::int_(py::reinterpret_borrow<py::object>(v)).cast<int>());
             std::shared_ptr<td::Driver> driver;
             {
               ScriptLineGuard line;
               py::gil_scoped_release release;
               driver = std::make_shared<td::Driver>(scripts, vlan_numbers, std::move(tests), std::move(out_dir),
                                                     keep_vm_state);
             }
             for (const auto& v : driver->vlans()) mirror_vlan_environment(*v);
             return driver;
           }),
           "start_scripts"_a, "vlans"_a, "tests"_a, "out_dir"_a, "keep_vm_state"_a = false)
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](td::Driver& d, py::args) {
        ScriptLineGuard line;
        py::gil_scoped_release release;
        d.cleanup();
        return false;
      })
      .def_property_readonly("tests", &td::Driver::tests)
      .def_property_readonly("out_dir", &td::Driver::out_dir)
      .def_property_readonly("core_machines", &td::Driver::machines,
                             "The machines made from the start scripts (test_driver.driver.Driver.machines_qemu "
                             "starts as a copy).")
      .def_property_readonly("core_containers", &td::Driver::containers,
                             "The containers made from run-NAME-nspawn start scripts "
                             "(test_driver.driver.Driver.machines_nspawn starts as a copy).")
      .def_property_readonly("vlans", &td::Driver::vlans)
      .def_property_readonly("polling_conditions", &td::Driver::polling_conditions)
      .def("cleanup", &td::Driver::cleanup, release_gil(), "Kill every machine and VLAN of the driver.")
      .def("start_machines", &td::Driver::start_machines, "machines"_a, release_gil(),
           "Start the machines, in parallel (start_all's work).")
      .def("join_machines", &td::Driver::join_machines, "machines"_a, release_gil(),
           "Wait for the machines to shut down (join_all's work).")
      .def("sync_machines", &td::Driver::sync_machines, "machines"_a, release_gil(),
           "Run `sync` on each of the machines that is up.")
      .def("release_machines", &td::Driver::release_machines, "machines"_a, release_gil(),
           "Kill the machines (cleanup's work on machines a script added); log what fails and go on.")
      .def("serial_stdout_on", &td::Driver::serial_stdout_on, "Print serial console lines on the terminal.")
      .def("serial_stdout_off", &td::Driver::serial_stdout_off, "Do not print serial console lines on the terminal.")
      .def("check_polling_conditions", &td::Driver::check_polling_conditions, release_gil(),
           "Check every polling condition that is due; raise PollingConditionFailed if one does not hold.")
      .def("push_polling_condition", &td::Driver::push_polling_condition, "condition"_a,
           "Put a polling condition in force (checked before each command).")
      .def("pop_polling_condition", &td::Driver::pop_polling_condition, "condition"_a,
           "End the polling condition put in force last, which must be `condition`.")
      .def("create_legacy_machine", &td::Driver::create_machine, "options"_a, "keep_vm_state"_a = false,
           "allow_reboot"_a = false, release_gil(),
           "create_machine()'s work: a machine from string options (startCommand, name, hda, hdaInterface, "
           "qemuBinary, ...), cleaned up with the driver.");
}
