// BaseMachine and Machine: member pointers with the GIL released, keyword
// names and defaults as the reference's, docstrings. Timeouts, patterns and
// JSON cross through the type casters beside this file.
#include "machine_bindings.h"

#include <pybind11/functional.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include "duration_caster.h"
#include "json_caster.h"
#include "log_nest.h"
#include "script_line.h"
#include "test_driver/base_machine.h"
#include "test_driver/keys.h"
#include "test_driver/machine.h"
#include "test_driver/nspawn_machine.h"
#include "text_pattern_caster.h"

namespace py = pybind11;
using namespace py::literals;

namespace td_bindings {
namespace {

// The script's line is taken before the GIL goes (script_line.h).
using release_gil = py::call_guard<ScriptLineGuard, py::gil_scoped_release>;

std::vector<std::string> to_strings(const py::args& args) {
  std::vector<std::string> out;
  for (auto a : args) out.push_back(py::str(a));
  return out;
}

// A region as Python gives it: (x, y, width, height) in screen pixels, or None.
using PyRegion = std::optional<std::tuple<int64_t, int64_t, int64_t, int64_t>>;
std::optional<td::ImageRegion> to_region(const PyRegion& region) {
  if (!region) return std::nullopt;
  auto [x, y, width, height] = *region;
  return td::ImageRegion{x, y, width, height};
}

// A Python callable as a callback of the core: called with the GIL held;
// its exceptions travel through C++ as error_already_set, unchanged.
std::function<void()> to_callback(py::function f) {
  return [f = std::move(f)] {
    py::gil_scoped_acquire gil;
    f();
  };
}

void bind_base_machine(py::module_& m) {
  using td::BaseMachine;
  const auto default_timeout = "timeout"_a = td::kDefaultTimeout;
  py::class_<BaseMachine, std::shared_ptr<BaseMachine>>(
      m, "BaseMachine", "What every machine can do through a root shell in it, whatever runs it.")
      .def_property_readonly("name", &BaseMachine::name)
      .def_property_readonly("out_dir", &BaseMachine::out_dir)
      .def_property_readonly("tmp_dir", &BaseMachine::tmp_dir)
      .def_property_readonly("shared_dir", &BaseMachine::shared_dir)
      .def_property_readonly("state_dir", &BaseMachine::state_dir)
      .def_property_readonly("booted", &BaseMachine::booted)
      .def_property("connected", &BaseMachine::connected, &BaseMachine::set_connected,
                    "Whether the guest's root shell is connected. Set it to False after a reboot the script "
                    "triggered itself: the next command waits for the new boot's shell.")
      // A copy: assign a new list to change them (appending to the copy does nothing).
      .def_property(
          "callbacks", [](BaseMachine& machine) { return machine.callbacks(); },
          [](BaseMachine& machine, std::vector<BaseMachine::Callback> callbacks) {
            machine.callbacks() = std::move(callbacks);
          })
      .def("is_up", &BaseMachine::is_up, "True when the machine is booted and its shell connected.")
      // the console: a VM's serial console, a container's /dev/console
      .def("get_console_log", &BaseMachine::console_log, release_gil(),
           "Everything the console (a VM's serial console, a container's /dev/console) printed since the machine "
           "started.")
      .def("wait_for_console_text", &BaseMachine::wait_for_console_text, "regex"_a, "timeout"_a = py::none(),
           release_gil(),
           "Wait until the console output not yet consumed by an earlier call matches regex (re.search over the "
           "lines joined with newlines).")
      .def("log", &BaseMachine::log, "msg"_a, "Log a line with this machine's name.")
      .def("log_serial", &BaseMachine::log_serial, "msg"_a)
      .def(
          "nested",
          [](BaseMachine& machine, const std::string& msg, py::object attrs) {
            td::LogAttributes all{{"machine", machine.name()}};
            for (auto& a : to_attributes(attrs)) all.push_back(a);
            return LogNest{msg, all};
          },
          "msg"_a, "attrs"_a = py::none(), "Context manager: a log nest with this machine's name.")
      .def("run_callbacks", &BaseMachine::run_callbacks, release_gil())
      .def("start", &BaseMachine::start, release_gil(), "Start the machine; does not wait for its root shell.")
      .def("connect", &BaseMachine::connect, release_gil(), "Start if needed and wait for the machine's root shell.")
      .def("shutdown", &BaseMachine::shutdown, release_gil(),
           "Power the machine off from inside and wait until it has stopped (QEMU or the container exited).")
      .def("crash", &BaseMachine::crash, release_gil(),
           "End the machine at once, as a crash would (QEMU quits; a container's init is killed).")
      .def("wait_for_shutdown", &BaseMachine::wait_for_shutdown, "timeout"_a = py::none(), release_gil(),
           "Wait until the machine has stopped.")
      .def("release", &BaseMachine::release, release_gil(), "Kill what still runs of the machine and close its channels.")
      // commands
      .def("execute", &BaseMachine::execute, "command"_a, "check_return"_a = true, default_timeout,
           "check_output"_a = true, release_gil(),
           "Run a shell command in the guest; return (exit status, output). Status is -1 when check_return is "
           "False. With a timeout (seconds), the command is killed after it.")
      .def(
          "succeed",
          [](BaseMachine& machine, py::args commands, std::optional<td::Duration> timeout) {
            auto list = to_strings(commands);
            ScriptLineGuard line;
            py::gil_scoped_release release;
            return machine.succeed(list, timeout);
          },
          "timeout"_a = py::none(), "Run each command; raise unless each exits 0. Returns the joined output.")
      .def(
          "fail",
          [](BaseMachine& machine, py::args commands, std::optional<td::Duration> timeout) {
            auto list = to_strings(commands);
            ScriptLineGuard line;
            py::gil_scoped_release release;
            return machine.fail(list, timeout);
          },
          "timeout"_a = py::none(), "Run each command; raise if any exits 0. Returns the joined output.")
      .def("wait_until_succeeds", &BaseMachine::wait_until_succeeds, "command"_a, default_timeout,
           "attempt_timeout"_a = py::none(), release_gil(),
           "Repeat a command until it exits 0; return its output. The timeout bounds the whole wait; each try is "
           "killed in the guest when it is up, or after attempt_timeout if that comes first.")
      .def("wait_until_fails", &BaseMachine::wait_until_fails, "command"_a, default_timeout,
           "attempt_timeout"_a = py::none(), release_gil(),
           "Repeat a command until it exits non-zero; return its output. The timeout bounds the whole wait; each "
           "try is killed in the guest when it is up, or after attempt_timeout if that comes first.")
      .def("sleep", &BaseMachine::sleep, "secs"_a, release_gil(), "Sleep in guest time.")
      // systemd
      .def("systemctl", &BaseMachine::systemctl, "q"_a, "user"_a = py::none(), release_gil(),
           "Run `systemctl q` (as `systemctl --user` of `user` when given); return (status, output).")
      .def("get_unit_info", &BaseMachine::get_unit_info, "unit"_a, "user"_a = py::none(), release_gil(),
           "The properties of a unit from `systemctl show`, as a dict.")
      .def("get_unit_property", &BaseMachine::get_unit_property, "unit"_a, "property"_a, "user"_a = py::none(),
           release_gil(), "One property of a unit from `systemctl show --property`.")
      .def("wait_for_unit", &BaseMachine::wait_for_unit, "unit"_a, "user"_a = py::none(), default_timeout,
           release_gil(),
           "Wait for a systemd unit to become active; raise if it fails or is inactive with no pending jobs.")
      .def("wait_for_unit_active_state", &BaseMachine::wait_for_unit_active_state, "unit"_a, "state"_a,
           "user"_a = py::none(), default_timeout, release_gil(),
           "Wait until a unit's ActiveState is `state` (active, reloading, inactive, failed, activating, "
           "deactivating, maintenance, refreshing); no state ends the wait early.")
      .def("require_unit_state", &BaseMachine::require_unit_state, "unit"_a, "require_state"_a = "active",
           release_gil(), "Raise unless the unit is in the given state.")
      .def("start_job", &BaseMachine::start_job, "jobname"_a, "user"_a = py::none(), release_gil(),
           "systemctl start; return (status, output).")
      .def("stop_job", &BaseMachine::stop_job, "jobname"_a, "user"_a = py::none(), release_gil(),
           "systemctl stop; return (status, output).")
      .def("wait_for_job", &BaseMachine::wait_for_job, "jobname"_a, release_gil(), "Same as wait_for_unit.")
      // files
      .def("wait_for_file", &BaseMachine::wait_for_file, "filename"_a, default_timeout, release_gil(),
           "Wait until the file exists in the guest.")
      .def("copy_from_host_via_shell", &BaseMachine::copy_from_host_via_shell, "source"_a, "target"_a, release_gil(),
           "Copy a host file into the guest through the shell (no shared directory needed).")
      .def("copy_from_host", &BaseMachine::copy_from_host, "source"_a, "target"_a, release_gil(),
           "Copy a host file or directory into the guest through the shared directory.")
      .def("copy_from_vm", &BaseMachine::copy_from_vm, "source"_a, "target_dir"_a = "", release_gil(),
           "Copy a guest file or directory to out_dir/target_dir through the shared directory.")
      .def("copy_from_machine", &BaseMachine::copy_from_vm, "source"_a, "target_dir"_a = "", release_gil(),
           "Upstream's name for copy_from_vm.")
      // ports
      .def("wait_for_open_port", &BaseMachine::wait_for_open_port, "port"_a, "addr"_a = "localhost", default_timeout,
           release_gil(), "Wait until a TCP port accepts connections in the guest.")
      .def("wait_for_closed_port", &BaseMachine::wait_for_closed_port, "port"_a, "addr"_a = "localhost",
           default_timeout, release_gil(), "Wait until a TCP port refuses connections in the guest.")
      .def("wait_for_open_unix_socket", &BaseMachine::wait_for_open_unix_socket, "path"_a, "is_datagram"_a = false,
           default_timeout, release_gil(), "Wait until a Unix socket accepts connections.")
      // TTYs, X11
      .def("get_tty_text", &BaseMachine::get_tty_text, "tty"_a, release_gil(), "The text on virtual terminal ttyN.")
      .def("wait_until_tty_matches", &BaseMachine::wait_until_tty_matches, "tty"_a, "regexp"_a, default_timeout,
           release_gil(), "Wait until the text on ttyN matches regexp.")
      .def("dump_tty_contents", &BaseMachine::dump_tty_contents, "tty"_a, release_gil(),
           "Debugging: write the contents of ttyN to the guest's journal.")
      .def("wait_for_x", &BaseMachine::wait_for_x, default_timeout, release_gil(),
           "Wait until the X server accepts connections.")
      .def("get_window_names", &BaseMachine::get_window_names, release_gil(), "Names of the X11 windows.")
      .def("wait_for_window", &BaseMachine::wait_for_window, "regexp"_a, default_timeout, release_gil(),
           "Wait until an X11 window whose name matches regexp exists.");
}

void bind_qemu_machine(py::module_& m) {
  using td::Machine;
  const auto default_timeout = "timeout"_a = td::kDefaultTimeout;
  py::class_<Machine, td::BaseMachine, std::shared_ptr<Machine>>(
      m, "Machine", "A handle to the machine with this name, that also manages its lifecycle.")
      .def(py::init([](std::filesystem::path out_dir, std::filesystem::path tmp_dir,
                       std::shared_ptr<td::StartCommand> start_command, std::string name, bool keep_vm_state,
                       bool allow_reboot, py::object callbacks, std::optional<std::filesystem::path> boot_cache) {
             Machine::Options o;
             if (boot_cache) o.boot_cache = std::move(*boot_cache);
             o.out_dir = std::move(out_dir);
             o.tmp_dir = std::move(tmp_dir);
             o.start_command = std::move(start_command);
             o.name = std::move(name);
             o.keep_vm_state = keep_vm_state;
             o.allow_reboot = allow_reboot;
             if (!callbacks.is_none())
               for (auto c : callbacks) o.callbacks.push_back(to_callback(c.cast<py::function>()));
             return std::make_shared<Machine>(std::move(o));
           }),
           "out_dir"_a, "tmp_dir"_a, "start_command"_a, "name"_a = "machine", "keep_vm_state"_a = false,
           "allow_reboot"_a = false, "callbacks"_a = py::none(), py::kw_only(), "boot_cache"_a = py::none())
      .def("__repr__", [](const Machine& machine) { return "<Machine '" + machine.name() + "'>"; })
      .def_static("create_startcommand", &make_legacy_start_command, "args"_a,
                  "The legacy start command from create_machine args.")
      .def_property_readonly("monitor_path", &Machine::monitor_path)
      .def_property_readonly("shell_path", &Machine::shell_path)
      .def_property_readonly("qmp_path", &Machine::qmp_path)
      .def_property_readonly("start_command", &Machine::start_command)
      .def_property_readonly("keep_vm_state", &Machine::keep_vm_state)
      .def_property("allow_reboot", &Machine::allow_reboot, &Machine::set_allow_reboot)
      .def_property_readonly("pid", &Machine::pid)
      .def("start", py::overload_cast<std::optional<bool>>(&Machine::start), "allow_reboot"_a = py::none(),
           release_gil(), "Start QEMU and wait for its monitor; does not wait for the guest to boot.")
      .def("cleanup_statedir", &Machine::cleanup_statedir, "Delete the VM state directory.")
      // snapshots
      .def("save_snapshot", &Machine::save_snapshot, "name"_a, release_gil(),
           "Save the running guest's state as `name` (under state_dir/snapshots; deleted at cleanup). The driver's "
           "9p shares are unmounted for the save and mounted again; a 9p share it does not own is an error.")
      .def("restore_snapshot", &Machine::restore_snapshot, "name"_a, release_gil(),
           "Revert the machine to the state saved as `name`: a new QEMU loads it, the shell, monitor, QMP and serial "
           "console are live again, the clock is set from the host's and the randomness reseeded (vmgenid).")
      .def_property_readonly("snapshots", &Machine::snapshots, "The names of the snapshots saved in this run.")
      .def_property_readonly(
          "boot_cache", [](const Machine& machine) -> py::object {
            auto dir = machine.boot_cache_dir();
            if (dir.empty()) return py::none();
            return py::cast(dir);
          },
          "The boot cache's directory (--boot-cache, $TEST_DRIVER_BOOT_CACHE), or None.")
      .def_property_readonly("boot_cache_outcome", &Machine::boot_cache_outcome,
                             "How the first start went with the boot cache: '' (no cache), 'hit', 'miss', or "
                             "'uncacheable: <why>'.")
      // the monitor and QMP
      .def("wait_for_monitor_prompt", &Machine::wait_for_monitor_prompt, release_gil(),
           "Read the monitor until its prompt; return what was read.")
      .def("send_monitor_command", &Machine::send_monitor_command, "command"_a, release_gil(),
           "Send a command to QEMU's human monitor; return its reply.")
      .def_property_readonly(
          "qmp_client",
          [](const std::shared_ptr<Machine>& machine) -> py::object {
            if (!machine->qmp_connected()) return py::none();
            return py::module_::import("test_driver.machine.qmp").attr("QMPSession")(machine);
          },
          "A QMPSession on the machine's QMP socket (send(cmd, args)), or None while QMP is not connected.")
      .def("qmp_command", &Machine::qmp_command, "command"_a, "arguments"_a = py::none(), release_gil(),
           "Send a QMP command; return its result. Raises QMPAPIError for an error reply.")
      .def(
          "wait_for_qmp_event",
          [](Machine& machine, py::function event_filter, td::Duration timeout) {
            // Any truthy value accepts the event, as in Python.
            auto filter = [event_filter](const td::Json& event) {
              py::gil_scoped_acquire gil;
              return py::bool_(event_filter(py::cast(event))).cast<bool>();
            };
            ScriptLineGuard line;
            py::gil_scoped_release release;
            return machine.wait_for_qmp_event(filter, timeout);
          },
          "event_filter"_a, "timeout"_a = Machine::kQmpEventTimeout,
          "Wait for a QMP event that event_filter(event_dict) accepts (earlier events count); return it.")
      // the serial console
      .def("send_console", &Machine::send_console, "chars"_a, release_gil(),
           "Write characters to the guest's serial console (QEMU's stdin).")
      .def("console_interact", &Machine::console_interact, release_gil(),
           "Forward the terminal's input to the guest's serial console until Ctrl-D (interactive use only).")
      // network
      .def("forward_port", &Machine::forward_port, "host_port"_a = 8080, "guest_port"_a = 80, release_gil(),
           "Forward a TCP port of the host (127.0.0.1) to one of the guest.")
      .def("block", &Machine::block, release_gil(), "Cut the first VLAN interface (eth1) off.")
      .def("unblock", &Machine::unblock, release_gil(), "Reconnect the first VLAN interface (eth1).")
      // keyboard
      .def("send_key", &Machine::send_key, "key"_a, "delay"_a = 0.01, "log"_a = true, release_gil(),
           "Press a key (a QEMU sendkey name, or a character of CHAR_TO_KEY).")
      .def("send_chars", &Machine::send_chars, "chars"_a, "delay"_a = 0.01, release_gil(),
           "Type characters with send_key.")
      .def("shell_interact", &Machine::shell_interact, release_gil(),
           "Connect the terminal to the guest's root shell (test development only).")
      .def("reboot", &Machine::reboot, release_gil(), "Press Ctrl+Alt+Delete; the shell reconnects on next use.")
      .def("switch_root", &Machine::switch_root, release_gil(),
           "From stage 1 (the initrd's backdoor shell: testing.initrdBackdoor) to stage 2: wait for initrd.target, "
           "isolate initrd-switch-root.target and connect to the new root's backdoor shell.")
      // screen
      .def("screenshot", &Machine::screenshot, "filename"_a, release_gil(),
           "Save a PNG of the screen: out_dir/<name>.png for a bare word, else the given path.")
      .def("get_screen_text_variants", &Machine::get_screen_text_variants, release_gil(),
           "The screen's text as read by OCR with each tesseract model.")
      .def("get_screen_text", &Machine::get_screen_text, release_gil(), "The screen's text as read by OCR.")
      .def("wait_for_text", &Machine::wait_for_text, "regex"_a, default_timeout, release_gil(),
           "Wait until OCR finds regex on the screen.")
      // screen matching
      .def(
          "screen_matches",
          [](Machine& machine, const std::filesystem::path& reference, const PyRegion& region, double threshold,
             int channel_tolerance) {
            return machine.screen_matches(reference, to_region(region), {channel_tolerance, threshold});
          },
          "reference_png"_a, "region"_a = py::none(), "threshold"_a = td::ImageTolerance{}.threshold, py::kw_only(),
          "channel_tolerance"_a = td::ImageTolerance{}.channel, release_gil(),
          "Whether the screen, or region (x, y, width, height) of it in screen pixels, matches the reference PNG: "
          "a pixel differs when one of its channels is further than channel_tolerance (0-255) from the "
          "reference's (default 16), and at most the fraction threshold of the pixels may differ (default 0.001: "
          "stray pixels pass, a changed character of 16-pixel text is ~80 pixels, so on the whole 1024x768 screen "
          "up to ~10 changed characters would pass; compare a region to check text). A region outside the screen, "
          "or a reference of another size than the region, is an error naming both sizes.")
      .def(
          "wait_for_screen_match",
          [](Machine& machine, const std::filesystem::path& reference, const PyRegion& region, double threshold,
             td::Duration timeout, int channel_tolerance) {
            machine.wait_for_screen_match(reference, to_region(region), {channel_tolerance, threshold}, timeout);
          },
          "reference_png"_a, "region"_a = py::none(), "threshold"_a = td::ImageTolerance{}.threshold,
          default_timeout, py::kw_only(), "channel_tolerance"_a = td::ImageTolerance{}.channel, release_gil(),
          "Wait until screen_matches(reference_png, region, threshold). On timeout, save the last screen (region) "
          "as out_dir/<reference's stem>.actual.png and its differing pixels in red over it dimmed as "
          "<stem>.diff.png, and raise the timeout error, saying how many pixels differed at best and naming both "
          "files.")
      .def(
          "save_screen_region",
          [](Machine& machine, const std::string& name, const PyRegion& region) {
            return machine.save_screen_region(name, to_region(region));
          },
          "name"_a, "region"_a = py::none(), release_gil(),
          "Save the screen, or region (x, y, width, height) of it, as a PNG to use as a reference image, named as "
          "screenshot() names its file (out_dir/<name>.png for a bare word); return its path.");
  m.attr("CHAR_TO_KEY") = td::char_to_key();
}

void bind_nspawn_machine(py::module_& m) {
  using td::NspawnMachine;
  py::class_<NspawnMachine, td::BaseMachine, std::shared_ptr<NspawnMachine>>(
      m, "NspawnMachine",
      "A machine that systemd-nspawn runs: a container booted by its start script (run-NAME-nspawn), reached "
      "through one persistent root shell in its namespaces.")
      .def(py::init([](std::filesystem::path out_dir, std::filesystem::path tmp_dir, std::string start_script,
                       std::optional<std::string> name, bool keep_machine_state, py::object callbacks) {
             NspawnMachine::Options o;
             o.out_dir = std::move(out_dir);
             o.tmp_dir = std::move(tmp_dir);
             o.start_script = std::move(start_script);
             o.name = name.value_or("");
             o.keep_machine_state = keep_machine_state;
             if (!callbacks.is_none())
               for (auto c : callbacks) o.callbacks.push_back(to_callback(c.cast<py::function>()));
             py::gil_scoped_release release;
             return std::make_shared<NspawnMachine>(std::move(o));
           }),
           "out_dir"_a, "tmp_dir"_a, "start_script"_a, "name"_a = py::none(), "keep_machine_state"_a = false,
           "callbacks"_a = py::none())
      .def("__repr__", [](const NspawnMachine& machine) { return "<NspawnMachine '" + machine.name() + "'>"; })
      .def_static("is_container_script", &NspawnMachine::is_container_script, "script"_a,
                  "Whether a start script's name marks a container (run-NAME-nspawn).")
      .def_static("name_from_script", &NspawnMachine::name_from_script, "script"_a,
                  "The machine name in run-NAME-nspawn, or \"machine\".")
      .def_property_readonly("start_script", &NspawnMachine::start_script)
      .def_property_readonly("keep_machine_state", &NspawnMachine::keep_machine_state)
      .def_property_readonly("root_dir", &NspawnMachine::root_dir,
                             "The container's writable root layer (RUN_NSPAWN_ROOT_DIR), in its state directory.")
      .def_property_readonly("pid", &NspawnMachine::pid, "The start script's pid while it runs.")
      .def_property_readonly("init_pid", &NspawnMachine::init_pid,
                             "The container's init (its PID 1) as the host sees it, once connected.");
}

}  // namespace

void bind_machines(py::module_& m) {
  m.attr("DEFAULT_TIMEOUT") = td::kDefaultTimeout;
  bind_base_machine(m);
  bind_qemu_machine(m);
  bind_nspawn_machine(m);
}

}  // namespace td_bindings
