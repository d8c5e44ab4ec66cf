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

namespace py = pybind11;
using namespace py::literals;

namespace {

using release_gil = py::call_guard<py::gil_scoped_release>;

// A timeout as scripts give it: None, seconds, or a datetime.timedelta.
std::optional<double> to_seconds(const py::object& value) {
  if (value.is_none()) return std::nullopt;
  double seconds = py::hasattr(value, "total_seconds") ? value.attr("total_seconds")().cast<double>() : value.cast<double>();
  if (!(seconds >= 0)) throw td::Error("timeout must not be negative, got " + py::repr(value).cast<std::string>());
  return seconds;
}

td::LogAttributes to_attributes(const py::object& attributes) {
  td::LogAttributes out;
  if (attributes.is_none()) return out;
  for (auto item : attributes.cast<py::dict>()) out.emplace_back(py::str(item.first), py::str(item.second));
  return out;
}

// A Python callable as a callback of the core: called with the GIL held;
// its exceptions travel through C++ as error_already_set, unchanged.
std::function<void()> to_callback(py::function f) {
  return [f = std::move(f)] {
    py::gil_scoped_acquire gil;
    f();
  };
}

// Scoped log nest as a Python context manager (rootlog.nested, machine.nested).
struct LogNest {
  std::string message;
  td::LogAttributes attributes;
  bool open = false;
  void enter() {
    td::rootlog().begin_nest(message, attributes);
    open = true;
  }
  void exit() {
    if (open) td::rootlog().end_nest();
    open = false;
  }
};

std::shared_ptr<td::LegacyStartCommand> make_legacy(const py::dict& args) {
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

// The core sets QEMU_VDE_SOCKET_<nr> in the process environment; mirror it
// in os.environ, which Python only reads at start-up.
void mirror_vlan_environment(const td::VLan& v) {
  py::module_::import("os").attr("environ")[py::str("QEMU_VDE_SOCKET_" + std::to_string(v.nr()))] =
      v.socket_dir().string();
}

// A Python regular expression (str or compiled) as the core's matcher, so
// that scripts keep Python's regex dialect. A bad pattern is an error naming it.
// JSON values cross as Python objects through the json module: the core
// speaks QMP's JSON, scripts see dicts.
py::object to_python(const td::Json& value) { return py::module_::import("json").attr("loads")(value.dump()); }

td::Json from_python(const py::object& value) {
  if (value.is_none()) return td::Json();
  return td::Json::parse(py::module_::import("json").attr("dumps")(value).cast<std::string>());
}

td::Machine::TextMatcher to_matcher(const py::object& regex) {
  py::object pattern;
  try {
    pattern = py::module_::import("re").attr("compile")(regex);
  } catch (py::error_already_set& e) {
    throw td::Error("invalid regular expression " + py::repr(regex).cast<std::string>() + ": " +
                    py::str(e.value()).cast<std::string>());
  }
  return [pattern](const std::string& text) {
    py::gil_scoped_acquire gil;
    return !pattern.attr("search")(text).is_none();
  };
}

std::string regex_text(const py::object& regex) {
  return py::str(py::hasattr(regex, "pattern") ? regex.attr("pattern") : regex);
}

std::vector<std::string> to_strings(const py::args& args) {
  std::vector<std::string> out;
  for (auto a : args) out.push_back(py::str(a));
  return out;
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
      PyErr_SetString(classes[4], e.what());
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
      .def("__exit__", [](LogNest& n, py::args) {
        n.exit();
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
      .def("begin_subtest", &td::Logger::begin_subtest, "name"_a,
           "Open a subtest: a nest in the log, and a case of the JUnit report.")
      .def("end_subtest", &td::Logger::end_subtest, "Close the innermost subtest.")
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
      [](py::function fn, py::object timeout) {
        std::function<bool(bool)> call = [fn](bool last_try) {
          py::gil_scoped_acquire gil;
          return py::bool_(fn(last_try)).cast<bool>();
        };
        double seconds = to_seconds(timeout).value_or(900);
        py::gil_scoped_release release;
        td::retry(call, seconds);
      },
      "fn"_a, "timeout"_a = 900,
      "Call fn(last_try) until it returns True; raise after `timeout` seconds. The last call gets last_try=True. "
      "Between calls it pauses a sixteenth of the time waited so far: at least 20 ms and as long as the last call "
      "took, at most one second.");

  // --- polling conditions
  py::class_<td::PollingCondition, std::shared_ptr<td::PollingCondition>>(m, "PollingCondition",
                                                                          "A condition that must hold while a test runs.")
      .def(py::init<std::function<bool()>, double, std::string>(), "condition"_a, "seconds_interval"_a,
           "description"_a, "condition() returns whether it holds; it is called with the GIL held.")
      .def("check", &td::PollingCondition::check, release_gil(), "Run the condition if due; True when it holds.")
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
             return make_legacy(args);
           }),
           "netBackendArgs"_a = py::none(), "netFrontendArgs"_a = py::none(), "hda"_a = py::none(),
           "cdrom"_a = py::none(), "usb"_a = py::none(), "bios"_a = py::none(), "qemuBinary"_a = py::none(),
           "qemuFlags"_a = py::none());

  // --- machines
  py::class_<td::Machine, std::shared_ptr<td::Machine>>(
      m, "Machine", "A handle to the machine with this name, that also manages its lifecycle.")
      .def(py::init([](std::filesystem::path out_dir, std::filesystem::path tmp_dir,
                       std::shared_ptr<td::StartCommand> start_command, std::string name, bool keep_vm_state,
                       bool allow_reboot, py::object callbacks) {
             td::Machine::Options o;
             o.out_dir = std::move(out_dir);
             o.tmp_dir = std::move(tmp_dir);
             o.start_command = std::move(start_command);
             o.name = std::move(name);
             o.keep_vm_state = keep_vm_state;
             o.allow_reboot = allow_reboot;
             if (!callbacks.is_none())
               for (auto c : callbacks) o.callbacks.push_back(to_callback(c.cast<py::function>()));
             return std::make_shared<td::Machine>(std::move(o));
           }),
           "out_dir"_a, "tmp_dir"_a, "start_command"_a, "name"_a = "machine", "keep_vm_state"_a = false,
           "allow_reboot"_a = false, "callbacks"_a = py::none())
      .def("__repr__", [](const td::Machine& m) { return "<Machine '" + m.name() + "'>"; })
      .def_static("create_startcommand", &make_legacy, "args"_a, "The legacy start command from create_machine args.")
      .def_property_readonly("name", &td::Machine::name)
      .def_property_readonly("out_dir", &td::Machine::out_dir)
      .def_property_readonly("tmp_dir", &td::Machine::tmp_dir)
      .def_property_readonly("shared_dir", &td::Machine::shared_dir)
      .def_property_readonly("state_dir", &td::Machine::state_dir)
      .def_property_readonly("monitor_path", &td::Machine::monitor_path)
      .def_property_readonly("shell_path", &td::Machine::shell_path)
      .def_property_readonly("start_command", &td::Machine::start_command)
      .def_property_readonly("keep_vm_state", &td::Machine::keep_vm_state)
      .def_property("allow_reboot", &td::Machine::allow_reboot, &td::Machine::set_allow_reboot)
      .def_property_readonly("booted", &td::Machine::booted)
      .def_property_readonly("connected", &td::Machine::connected)
      .def_property_readonly("pid", &td::Machine::pid)
      .def_property_readonly("callbacks", [](td::Machine& m) { return m.callbacks(); })
      .def("is_up", &td::Machine::is_up, "True when the machine is booted and its shell connected.")
      .def("log", &td::Machine::log, "msg"_a, "Log a line with this machine's name.")
      .def("log_serial", &td::Machine::log_serial, "msg"_a)
      .def(
          "nested",
          [](td::Machine& m, const std::string& msg, py::object attrs) {
            td::LogAttributes all{{"machine", m.name()}};
            for (auto& a : to_attributes(attrs)) all.push_back(a);
            return LogNest{msg, all};
          },
          "msg"_a, "attrs"_a = py::none(), "Context manager: a log nest with this machine's name.")
      .def("run_callbacks", &td::Machine::run_callbacks, release_gil())
      .def("start", &td::Machine::start, "allow_reboot"_a = py::none(), release_gil(),
           "Start QEMU and wait for its monitor; does not wait for the guest to boot.")
      .def("connect", &td::Machine::connect, release_gil(), "Start if needed and wait for the guest's root shell.")
      .def("shutdown", &td::Machine::shutdown, release_gil(), "Power the guest off and wait until QEMU exits.")
      .def("crash", &td::Machine::crash, release_gil(), "Quit QEMU at once, as a crash would.")
      .def(
          "wait_for_shutdown",
          [](td::Machine& m, py::object timeout) {
            auto t = to_seconds(timeout);
            py::gil_scoped_release release;
            m.wait_for_shutdown(t);
          },
          "timeout"_a = py::none(), "Wait until QEMU exits.")
      .def("release", &td::Machine::release, release_gil(), "Kill QEMU and close its channels.")
      .def("cleanup_statedir", &td::Machine::cleanup_statedir, "Delete the VM state directory.")
      .def(
          "execute",
          [](td::Machine& m, const std::string& command, bool check_return, py::object timeout, bool check_output) {
            auto t = to_seconds(timeout);
            py::gil_scoped_release release;
            return m.execute(command, check_return, t, check_output);
          },
          "command"_a, "check_return"_a = true, "timeout"_a = 900, "check_output"_a = true,
          "Run a shell command in the guest; return (exit status, output). Status is -1 when check_return is "
          "False. With a timeout (seconds), the command is killed after it.")
      .def(
          "succeed",
          [](td::Machine& m, py::args commands, py::object timeout) {
            auto list = to_strings(commands);
            auto t = to_seconds(timeout);
            py::gil_scoped_release release;
            return m.succeed(list, t);
          },
          "timeout"_a = py::none(), "Run each command; raise unless each exits 0. Returns the joined output.")
      .def(
          "fail",
          [](td::Machine& m, py::args commands, py::object timeout) {
            auto list = to_strings(commands);
            auto t = to_seconds(timeout);
            py::gil_scoped_release release;
            return m.fail(list, t);
          },
          "timeout"_a = py::none(), "Run each command; raise if any exits 0. Returns the joined output.")
      .def(
          "wait_until_succeeds",
          [](td::Machine& m, const std::string& command, py::object timeout) {
            double t = to_seconds(timeout).value_or(900);
            py::gil_scoped_release release;
            return m.wait_until_succeeds(command, t);
          },
          "command"_a, "timeout"_a = 900, "Repeat a command until it exits 0; return its output.")
      .def(
          "wait_until_fails",
          [](td::Machine& m, const std::string& command, py::object timeout) {
            double t = to_seconds(timeout).value_or(900);
            py::gil_scoped_release release;
            return m.wait_until_fails(command, t);
          },
          "command"_a, "timeout"_a = 900, "Repeat a command until it exits non-zero; return its output.")
      .def("wait_for_monitor_prompt", &td::Machine::wait_for_monitor_prompt, release_gil(),
           "Read the monitor until its prompt; return what was read.")
      .def("send_monitor_command", &td::Machine::send_monitor_command, "command"_a, release_gil(),
           "Send a command to QEMU's human monitor; return its reply.")
      .def_property_readonly("qmp_path", &td::Machine::qmp_path)
      .def(
          "qmp_command",
          [](td::Machine& m, const std::string& command, py::object arguments) {
            td::Json args = from_python(arguments);
            td::Json result;
            {
              py::gil_scoped_release release;
              result = m.qmp_command(command, args);
            }
            return to_python(result);
          },
          "command"_a, "arguments"_a = py::none(),
          "Send a QMP command; return its result. Raises QMPAPIError for an error reply.")
      .def(
          "wait_for_qmp_event",
          [](td::Machine& m, py::function event_filter, py::object timeout) {
            double t = to_seconds(timeout).value_or(600);
            auto filter = [event_filter](const td::Json& event) {
              py::gil_scoped_acquire gil;
              return py::bool_(event_filter(to_python(event))).cast<bool>();
            };
            td::Json event;
            {
              py::gil_scoped_release release;
              event = m.wait_for_qmp_event(filter, t);
            }
            return to_python(event);
          },
          "event_filter"_a, "timeout"_a = 600,
          "Wait for a QMP event that event_filter(event_dict) accepts (earlier events count); return it.")
      .def("get_console_log", &td::Machine::console_log, release_gil(),
           "Everything the serial console printed since the machine started.")
      .def(
          "wait_for_console_text",
          [](td::Machine& m, py::object regex, py::object timeout) {
            auto matcher = to_matcher(regex);
            auto text = regex_text(regex);
            auto t = to_seconds(timeout);
            py::gil_scoped_release release;
            m.wait_for_console_text(text, matcher, t);
          },
          "regex"_a, "timeout"_a = py::none(),
          "Wait until the serial console output not yet consumed by an earlier call matches regex (re.search over "
          "the lines joined with newlines).")
      .def("send_console", &td::Machine::send_console, "chars"_a, release_gil(),
           "Write characters to the guest's serial console (QEMU's stdin).")
      .def("console_interact", &td::Machine::console_interact, release_gil(),
           "Forward the terminal's input to the guest's serial console until Ctrl-D (interactive use only).")
      // systemd
      .def("systemctl", &td::Machine::systemctl, "q"_a, "user"_a = py::none(), release_gil(),
           "Run `systemctl q` (as `systemctl --user` of `user` when given); return (status, output).")
      .def("get_unit_info", &td::Machine::get_unit_info, "unit"_a, "user"_a = py::none(), release_gil(),
           "The properties of a unit from `systemctl show`, as a dict.")
      .def("get_unit_property", &td::Machine::get_unit_property, "unit"_a, "property"_a, "user"_a = py::none(),
           release_gil(), "One property of a unit from `systemctl show --property`.")
      .def(
          "wait_for_unit",
          [](td::Machine& m, const std::string& unit, std::optional<std::string> user, py::object timeout) {
            double t = to_seconds(timeout).value_or(900);
            py::gil_scoped_release release;
            m.wait_for_unit(unit, user, t);
          },
          "unit"_a, "user"_a = py::none(), "timeout"_a = 900,
          "Wait for a systemd unit to become active; raise if it fails or is inactive with no pending jobs.")
      .def("require_unit_state", &td::Machine::require_unit_state, "unit"_a, "require_state"_a = "active",
           release_gil(), "Raise unless the unit is in the given state.")
      .def("start_job", &td::Machine::start_job, "jobname"_a, "user"_a = py::none(), release_gil(),
           "systemctl start; return (status, output).")
      .def("stop_job", &td::Machine::stop_job, "jobname"_a, "user"_a = py::none(), release_gil(),
           "systemctl stop; return (status, output).")
      .def("wait_for_job", &td::Machine::wait_for_job, "jobname"_a, release_gil(), "Same as wait_for_unit.")
      // files
      .def(
          "wait_for_file",
          [](td::Machine& m, const std::string& filename, py::object timeout) {
            double t = to_seconds(timeout).value_or(900);
            py::gil_scoped_release release;
            m.wait_for_file(filename, t);
          },
          "filename"_a, "timeout"_a = 900, "Wait until the file exists in the guest.")
      .def("copy_from_host_via_shell", &td::Machine::copy_from_host_via_shell, "source"_a, "target"_a, release_gil(),
           "Copy a host file into the guest through the shell (no shared directory needed).")
      .def("copy_from_host", &td::Machine::copy_from_host, "source"_a, "target"_a, release_gil(),
           "Copy a host file or directory into the guest through the shared directory.")
      .def("copy_from_vm", &td::Machine::copy_from_vm, "source"_a, "target_dir"_a = "", release_gil(),
           "Copy a guest file or directory to out_dir/target_dir through the shared directory.")
      .def("copy_from_machine", &td::Machine::copy_from_vm, "source"_a, "target_dir"_a = "", release_gil(),
           "Upstream's name for copy_from_vm.")
      // network
      .def(
          "wait_for_open_port",
          [](td::Machine& m, int port, const std::string& addr, py::object timeout) {
            double t = to_seconds(timeout).value_or(900);
            py::gil_scoped_release release;
            m.wait_for_open_port(port, addr, t);
          },
          "port"_a, "addr"_a = "localhost", "timeout"_a = 900, "Wait until a TCP port accepts connections in the guest.")
      .def(
          "wait_for_closed_port",
          [](td::Machine& m, int port, const std::string& addr, py::object timeout) {
            double t = to_seconds(timeout).value_or(900);
            py::gil_scoped_release release;
            m.wait_for_closed_port(port, addr, t);
          },
          "port"_a, "addr"_a = "localhost", "timeout"_a = 900, "Wait until a TCP port refuses connections in the guest.")
      .def(
          "wait_for_open_unix_socket",
          [](td::Machine& m, const std::string& path, bool is_datagram, py::object timeout) {
            double t = to_seconds(timeout).value_or(900);
            py::gil_scoped_release release;
            m.wait_for_open_unix_socket(path, is_datagram, t);
          },
          "path"_a, "is_datagram"_a = false, "timeout"_a = 900, "Wait until a Unix socket accepts connections.")
      .def("forward_port", &td::Machine::forward_port, "host_port"_a = 8080, "guest_port"_a = 80, release_gil(),
           "Forward a TCP port of the host (127.0.0.1) to one of the guest.")
      .def("block", &td::Machine::block, release_gil(), "Cut the first VLAN interface (eth1) off.")
      .def("unblock", &td::Machine::unblock, release_gil(), "Reconnect the first VLAN interface (eth1).")
      // keyboard, TTYs, X11
      .def("send_key", &td::Machine::send_key, "key"_a, "delay"_a = 0.01, "log"_a = true, release_gil(),
           "Press a key (a QEMU sendkey name, or a character of CHAR_TO_KEY).")
      .def("send_chars", &td::Machine::send_chars, "chars"_a, "delay"_a = 0.01, release_gil(),
           "Type characters with send_key.")
      .def("get_tty_text", &td::Machine::get_tty_text, "tty"_a, release_gil(), "The text on virtual terminal ttyN.")
      .def(
          "wait_until_tty_matches",
          [](td::Machine& m, const std::string& tty, py::object regexp, py::object timeout) {
            auto matcher = to_matcher(regexp);
            auto text = regex_text(regexp);
            double t = to_seconds(timeout).value_or(900);
            py::gil_scoped_release release;
            m.wait_until_tty_matches(tty, text, matcher, t);
          },
          "tty"_a, "regexp"_a, "timeout"_a = 900, "Wait until the text on ttyN matches regexp.")
      .def("dump_tty_contents", &td::Machine::dump_tty_contents, "tty"_a, release_gil(),
           "Debugging: write the contents of ttyN to the guest's journal.")
      .def(
          "sleep", [](td::Machine& m, double secs) {
            py::gil_scoped_release release;
            m.sleep(secs);
          },
          "secs"_a, "Sleep in guest time.")
      .def(
          "wait_for_x",
          [](td::Machine& m, py::object timeout) {
            double t = to_seconds(timeout).value_or(900);
            py::gil_scoped_release release;
            m.wait_for_x(t);
          },
          "timeout"_a = 900, "Wait until the X server accepts connections.")
      .def("get_window_names", &td::Machine::get_window_names, release_gil(), "Names of the X11 windows.")
      .def(
          "wait_for_window",
          [](td::Machine& m, py::object regexp, py::object timeout) {
            auto matcher = to_matcher(regexp);
            auto text = regex_text(regexp);
            double t = to_seconds(timeout).value_or(900);
            py::gil_scoped_release release;
            m.wait_for_window(text, matcher, t);
          },
          "regexp"_a, "timeout"_a = 900, "Wait until an X11 window whose name matches regexp exists.")
      .def("shell_interact", &td::Machine::shell_interact, release_gil(),
           "Connect the terminal to the guest's root shell (test development only).")
      .def("reboot", &td::Machine::reboot, release_gil(), "Press Ctrl+Alt+Delete; the shell reconnects on next use.")
      // screen
      .def("screenshot", &td::Machine::screenshot, "filename"_a, release_gil(),
           "Save a PNG of the screen: out_dir/<name>.png for a bare word, else the given path.")
      .def("get_screen_text_variants", &td::Machine::get_screen_text_variants, release_gil(),
           "The screen's text as read by OCR with each tesseract model.")
      .def("get_screen_text", &td::Machine::get_screen_text, release_gil(), "The screen's text as read by OCR.")
      .def(
          "wait_for_text",
          [](td::Machine& m, py::object regex, py::object timeout) {
            auto matcher = to_matcher(regex);
            auto text = regex_text(regex);
            double t = to_seconds(timeout).value_or(900);
            py::gil_scoped_release release;
            m.wait_for_text(text, matcher, t);
          },
          "regex"_a, "timeout"_a = 900, "Wait until OCR finds regex on the screen.");
  m.attr("CHAR_TO_KEY") = td::char_to_key();

  // --- VLANs
  py::class_<td::VLan, std::shared_ptr<td::VLan>>(m, "VLan", "A virtual LAN: one vde_switch.")
      .def(py::init([](int nr, std::filesystem::path tmp_dir) {
             std::shared_ptr<td::VLan> v;
             {
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
        py::gil_scoped_release release;
        d.cleanup();
        return false;
      })
      .def_property_readonly("tests", &td::Driver::tests)
      .def_property_readonly("out_dir", &td::Driver::out_dir)
      .def_property_readonly("machines", &td::Driver::machines)
      .def_property_readonly("vlans", &td::Driver::vlans)
      .def_property_readonly("polling_conditions", &td::Driver::polling_conditions)
      .def("cleanup", &td::Driver::cleanup, release_gil(), "Kill every machine and VLAN of the driver.")
      .def("start_all", &td::Driver::start_all, release_gil(), "Start all machines.")
      .def("join_all", &td::Driver::join_all, release_gil(), "Wait for all machines to shut down.")
      .def("serial_stdout_on", &td::Driver::serial_stdout_on, "Print serial console lines on the terminal.")
      .def("serial_stdout_off", &td::Driver::serial_stdout_off, "Do not print serial console lines on the terminal.")
      .def("check_polling_conditions", &td::Driver::check_polling_conditions, release_gil(),
           "Check every polling condition that is due; raise PollingConditionFailed if one does not hold.")
      .def("push_polling_condition", &td::Driver::push_polling_condition, "condition"_a,
           "Put a polling condition in force (checked before each command).")
      .def("pop_polling_condition", &td::Driver::pop_polling_condition, "condition"_a,
           "End the polling condition put in force last, which must be `condition`.")
      .def("sync_all", &td::Driver::sync_all, release_gil(), "Run `sync` on every machine that is up.")
      .def("create_legacy_machine", &td::Driver::create_machine, "options"_a, "keep_vm_state"_a = false,
           "allow_reboot"_a = false, release_gil(),
           "create_machine()'s work: a machine from string options (startCommand, name, hda, hdaInterface, "
           "qemuBinary, ...), cleaned up with the driver.");
}
