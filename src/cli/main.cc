// nixos-test-driver: parses the reference's command line (CLI11), then runs
// the test script in an embedded Python interpreter through the test_driver
// package, so the executable and `import test_driver` share one core.
#include <pybind11/embed.h>
#include <pybind11/stl.h>
#include <unistd.h>

#include "repl.h"

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <stdexcept>

namespace py = pybind11;
using namespace py::literals;

namespace {

std::vector<std::string> split_words(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> words;
  for (std::string w; in >> w;) words.push_back(w);
  return words;
}

// Where the test_driver package is: next to a build tree's executable, or
// where `cmake --install` put it.
void add_package_path() {
  py::module_ sys = py::module_::import("sys");
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec).string();
  std::string build_dir = std::filesystem::path(TD_BUILD_PYTHONPATH).parent_path().string();
  const char* path = exe.starts_with(build_dir + "/") ? TD_BUILD_PYTHONPATH : TD_INSTALL_PYTHONPATH;
  sys.attr("path").attr("insert")(0, path);
}

// What a -c/--config file gives; unset keys are std::nullopt.
struct Config {
  std::optional<std::vector<std::string>> start_scripts;
  std::optional<std::vector<int>> vlans;
  std::optional<double> global_timeout;
  std::optional<std::string> test_script;
};

struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Is `value` a JSON number (Python's json gives int or float; bool is an
// int subclass there, but not a number in JSON)?
bool is_json_number(const py::handle& value) {
  return !py::isinstance<py::bool_>(value) && (py::isinstance<py::int_>(value) || py::isinstance<py::float_>(value));
}

bool is_json_int(const py::handle& value) { return !py::isinstance<py::bool_>(value) && py::isinstance<py::int_>(value); }

std::string json_type(const py::handle& value) {
  if (value.is_none()) return "null";
  if (py::isinstance<py::bool_>(value)) return "a boolean";
  if (is_json_number(value)) return "a number";
  if (py::isinstance<py::str>(value)) return "a string";
  if (py::isinstance<py::list>(value)) return "a list";
  if (py::isinstance<py::dict>(value)) return "an object";
  return "unknown";
}

// The driver configuration as JSON (Python's json module, so no new
// dependency). Relative paths in it are relative to the file's directory.
//   {"vms": [{"name": "server", "start_script": "/nix/store/…/bin/run-server-vm"}, …]
//        or {"server": {"start_script": "…"}, …},
//    "vlans": [1, 2], "global_timeout": 3600, "test_script": "test.py"}
Config load_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ConfigError("cannot read " + path + ": " + std::strerror(errno));
  std::stringstream text;
  text << in.rdbuf();
  py::object data;
  try {
    data = py::module_::import("json").attr("loads")(py::bytes(text.str()));
  } catch (py::error_already_set& e) {
    if (!e.matches(PyExc_ValueError)) throw;  // JSONDecodeError, UnicodeDecodeError
    throw ConfigError(path + " is not valid JSON: " + py::str(e.value()).cast<std::string>());
  }
  if (!py::isinstance<py::dict>(data)) throw ConfigError(path + ": the top level must be an object, not " + json_type(data));
  std::filesystem::path base = std::filesystem::path(path).parent_path();
  auto resolve = [&](const std::string& p) { return std::filesystem::path(p).is_absolute() ? p : (base / p).string(); };
  auto string_at = [&](const py::handle& value, const std::string& key) {
    if (!py::isinstance<py::str>(value))
      throw ConfigError(path + ": '" + key + "' must be a string, not " + json_type(value));
    std::string out = value.cast<std::string>();
    if (out.empty()) throw ConfigError(path + ": '" + key + "' must not be empty");
    return out;
  };
  py::object NixStartScript = py::module_::import("test_driver._core").attr("NixStartScript");
  Config config;
  auto add_vm = [&](const py::handle& vm, const std::string& key, std::optional<std::string> name) {
    std::string script;
    if (py::isinstance<py::str>(vm)) {
      script = string_at(vm, key);
    } else if (py::isinstance<py::dict>(vm)) {
      py::dict object = vm.cast<py::dict>();
      for (auto item : object) {
        std::string k = py::str(item.first);
        if (k != "name" && k != "start_script") throw ConfigError(path + ": unknown key '" + key + "." + k + "'");
      }
      if (!object.contains("start_script")) throw ConfigError(path + ": '" + key + ".start_script' is missing");
      script = string_at(object["start_script"], key + ".start_script");
      if (object.contains("name")) {
        std::string given = string_at(object["name"], key + ".name");
        if (name && *name != given)
          throw ConfigError(path + ": '" + key + ".name' is '" + given + "', but the key says '" + *name + "'");
        name = given;
      }
    } else {
      throw ConfigError(path + ": '" + key + "' must be an object or a string, not " + json_type(vm));
    }
    script = resolve(script);
    // The driver names a machine after its start script, run-<name>-vm.
    std::string derived = NixStartScript(script).attr("machine_name").cast<std::string>();
    if (name && *name != derived)
      throw ConfigError(path + ": '" + key + "' names the machine '" + *name + "', but its start script " + script +
                        " gives '" + derived + "' (machines are named after run-<name>-vm)");
    config.start_scripts->push_back(script);
  };
  for (auto item : data.cast<py::dict>()) {
    std::string key = py::str(item.first);
    py::handle value = item.second;
    if (key == "vms") {
      config.start_scripts.emplace();
      if (py::isinstance<py::list>(value)) {
        size_t i = 0;
        for (auto vm : value) add_vm(vm, "vms[" + std::to_string(i++) + "]", std::nullopt);
      } else if (py::isinstance<py::dict>(value)) {
        for (auto vm : value.cast<py::dict>()) {
          std::string name = py::str(vm.first);
          add_vm(vm.second, "vms." + name, name);
        }
      } else {
        throw ConfigError(path + ": 'vms' must be a list or an object, not " + json_type(value));
      }
    } else if (key == "vlans") {
      if (!py::isinstance<py::list>(value)) throw ConfigError(path + ": 'vlans' must be a list, not " + json_type(value));
      config.vlans.emplace();
      for (auto v : value) {
        if (!is_json_int(v)) throw ConfigError(path + ": 'vlans' must hold integers, not " + json_type(v));
        long nr = v.cast<long>();
        if (nr < 0 || nr > 65535) throw ConfigError(path + ": 'vlans': invalid VLAN number " + std::to_string(nr));
        config.vlans->push_back(static_cast<int>(nr));
      }
    } else if (key == "global_timeout") {
      if (!is_json_number(value))
        throw ConfigError(path + ": 'global_timeout' must be a number of seconds, not " + json_type(value));
      config.global_timeout = value.cast<double>();
      if (!(*config.global_timeout > 0) || *config.global_timeout > 1e9)
        throw ConfigError(path + ": 'global_timeout' must be a positive number of seconds");
    } else if (key == "test_script") {
      config.test_script = resolve(string_at(value, key));
    } else {
      throw ConfigError(path + ": unknown key '" + key + "' (known: vms, vlans, global_timeout, test_script)");
    }
  }
  return config;
}

// Without the frames of the package (which runs the script now).
std::string format_exception(const py::error_already_set& e) {
  // trace() is null for an exception raised outside any Python frame (an
  // error from the Driver's constructor).
  py::object trace = e.trace() ? py::reinterpret_borrow<py::object>(e.trace()) : py::none();
  return py::module_::import("test_driver.logger").attr("format_exception")(e.type(), e.value(), trace).cast<std::string>();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Run a NixOS VM test script against QEMU machines.", "nixos-test-driver"};
  bool keep_vm_state = false;
  bool interactive = false;
  std::vector<std::string> start_scripts;
  std::vector<std::string> vlans;
  std::string output_directory = std::filesystem::current_path().string();
  std::string testscript;
  std::string config_path;
  std::string junit_xml;
  std::string log_level = "info";
  double global_timeout = 3600;
  app.add_flag("-K,--keep-vm-state,--keep-machine-state", keep_vm_state,
               "re-use a VM state coming from a previous run");
  app.add_flag("-I,--interactive,!--no-interactive", interactive, "drop into a python repl and run the tests interactively");
  auto* scripts_opt = app.add_option("--start-scripts", start_scripts,
                                     "start scripts for participating virtual machines (default: $startScripts)");
  auto* vlans_opt = app.add_option("--vlans", vlans, "vlans to span by the driver (default: $vlans)");
  // Like argparse's nargs="*": no values is fine, and an option ends the list.
  scripts_opt->expected(0, CLI::detail::expected_max_vector_size);
  vlans_opt->expected(0, CLI::detail::expected_max_vector_size);
  app.add_option("-o,--output_directory", output_directory,
                 "The path to the directory where outputs copied from the VM will be placed. By e.g. "
                 "Machine.copy_from_vm or Machine.screenshot");
  auto* timeout_opt = app.add_option("--global-timeout", global_timeout,
                                     "end the run after this many seconds (default: $globalTimeout or 3600)");
  app.add_option("-c,--config", config_path,
                 "a JSON driver configuration (keys vms, vlans, global_timeout, test_script), instead of "
                 "--start-scripts, --vlans, --global-timeout and testscript; those flags override its keys");
  app.add_option("--junit-xml", junit_xml,
                 "write a JUnit XML report (one test case per subtest) to this path, relative to the output "
                 "directory; written also when the run fails or is interrupted");
  auto* level_opt = app.add_option("--log-level", log_level,
                                   "the lowest level of log lines shown on the terminal: debug, info, warning or "
                                   "error (default: $logLevel or info)");
  bool generate_symbols = false;
  app.add_flag("--generate-driver-symbols", generate_symbols,
               "write the names a test script sees, comma-separated, to ./driver-symbols (for pyflakes) and exit");
  auto* script_opt = app.add_option("testscript", testscript, "the test script to run (default: $testScript)");
  CLI11_PARSE(app, argc, argv);
  // An option given without values leaves one empty value behind.
  std::erase(start_scripts, std::string());
  std::erase(vlans, std::string());

  // UTF-8 mode: pybind11's isolated config leaves the C locale, where a
  // script printing a guest's non-ASCII output would raise.
  PyPreConfig preconfig;
  PyPreConfig_InitPythonConfig(&preconfig);
  preconfig.utf8_mode = 1;
  Py_PreInitialize(&preconfig);
  py::scoped_interpreter interpreter;

  if (generate_symbols) {  // test_driver.generate_driver_symbols(), as the reference's entry point
    try {
      add_package_path();
      py::module_::import("test_driver").attr("generate_driver_symbols")();
      return 0;
    } catch (py::error_already_set& e) {
      std::cerr << format_exception(e);
      return 1;
    }
  }

  // Command-line flags win over the config file, which wins over the environment.
  Config config;
  if (!config_path.empty()) {
    try {
      add_package_path();
      config = load_config(config_path);
    } catch (const ConfigError& e) {
      std::cerr << "nixos-test-driver: error: argument -c/--config: " << e.what() << "\n";
      return 2;
    } catch (py::error_already_set& e) {
      std::cerr << "nixos-test-driver: error: argument -c/--config: " << config_path << ": "
                << py::str(e.value()).cast<std::string>() << "\n";
      return 2;
    }
  }
  bool vlans_are_numbers = false;
  std::vector<int> vlan_numbers;
  if (scripts_opt->count() == 0) {
    if (config.start_scripts)
      start_scripts = *config.start_scripts;
    else if (const char* env = std::getenv("startScripts"))
      start_scripts = split_words(env);
  }
  if (vlans_opt->count() == 0) {
    if (config.vlans) {
      vlan_numbers = *config.vlans;
      vlans_are_numbers = true;
    } else if (const char* env = std::getenv("vlans")) {
      vlans = split_words(env);
    }
  }
  if (script_opt->count() == 0) {
    if (config.test_script)
      testscript = *config.test_script;
    else if (const char* env = std::getenv("testScript"))
      testscript = env;
  }
  if (timeout_opt->count() == 0) {
    if (config.global_timeout) {
      global_timeout = *config.global_timeout;
    } else if (const char* env = std::getenv("globalTimeout")) {
      char* end = nullptr;
      global_timeout = std::strtod(env, &end);
      if (end == env || *end != '\0') global_timeout = -1;
    }
  }
  if (level_opt->count() == 0)
    if (const char* env = std::getenv("logLevel"); env && *env) log_level = env;
  {
    std::string lower = log_level;
    for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower == "warn") lower = "warning";
    if (lower != "debug" && lower != "info" && lower != "warning" && lower != "error") {
      std::cerr << "nixos-test-driver: error: argument --log-level ($logLevel): invalid choice: '" << log_level
                << "' (choose from 'debug', 'info', 'warning', 'error')\n";
      return 2;
    }
    log_level = lower;
  }
  if (!(global_timeout > 0) || global_timeout > 1e9) {
    std::cerr << "nixos-test-driver: error: argument --global-timeout ($globalTimeout): a positive number of seconds "
                 "is required\n";
    return 2;
  }
  if (testscript.empty()) {
    std::cerr << "nixos-test-driver: error: the following arguments are required: testscript (or $testScript)\n";
    return 2;
  }
  if (!vlans_are_numbers) {
    for (const auto& v : vlans) {
      try {
        size_t used = 0;
        vlan_numbers.push_back(std::stoi(v, &used));
        if (used != v.size()) throw std::invalid_argument(v);
      } catch (const std::exception&) {
        std::cerr << "nixos-test-driver: error: argument --vlans: invalid VLAN number: '" << v << "'\n";
        return 2;
      }
    }
  }
  std::filesystem::path out_dir(output_directory);
  if (!std::filesystem::is_directory(out_dir)) {
    std::cerr << "nixos-test-driver: error: argument -o/--output_directory: " << output_directory
              << " is not a directory\n";
    return 2;
  }
  if (::access(out_dir.c_str(), W_OK) != 0) {
    std::cerr << "nixos-test-driver: error: argument -o/--output_directory: " << output_directory
              << " is not a writeable directory\n";
    return 2;
  }
  std::filesystem::path junit_path;
  if (!junit_xml.empty()) {
    junit_path = std::filesystem::absolute(out_dir / junit_xml).lexically_normal();
    std::filesystem::path parent = junit_path.parent_path();
    if (!std::filesystem::is_directory(parent) || ::access(parent.c_str(), W_OK) != 0) {
      std::cerr << "nixos-test-driver: error: argument --junit-xml: " << parent.string()
                << " is not a writeable directory\n";
      return 2;
    }
  }
  std::ifstream script_file(testscript);
  if (!script_file) {
    std::cerr << "nixos-test-driver: error: cannot read the test script " << testscript << ": "
              << std::strerror(errno) << "\n";
    return 2;
  }
  std::stringstream script_text;
  script_text << script_file.rdbuf();

  try {
    py::bytes(script_text.str()).attr("decode")("utf-8");
  } catch (py::error_already_set& e) {
    std::cerr << "nixos-test-driver: error: the test script " << testscript
              << " is not UTF-8 text: " << py::str(e.value()).cast<std::string>() << "\n";
    return 2;
  }
  int status = 0;
  try {
    if (config_path.empty()) add_package_path();
    // _signal, not signal: the latter imports enum, a tenth of the start-up.
    py::module_ signal = py::module_::import("_signal");
    // SIGTERM ends the run like Ctrl-C: the script unwinds and cleanup runs.
    signal.attr("signal")(signal.attr("SIGTERM"), signal.attr("default_int_handler"));
    // So does SIGHUP: a closed terminal must not orphan the machines.
    signal.attr("signal")(signal.attr("SIGHUP"), signal.attr("default_int_handler"));
    py::object rootlog = py::module_::import("test_driver.logger").attr("rootlog");
    rootlog.attr("level") = log_level;
    // Written by rootlog.close(), which every way out of the run reaches.
    if (!junit_path.empty()) rootlog.attr("open_junit")(junit_path.string());
    py::object Driver = py::module_::import("test_driver.driver").attr("Driver");
    if (!keep_vm_state) rootlog.attr("info")("Machine state will be reset. To keep it, pass --keep-vm-state");
    py::object driver;
    // The global timeout is SIGALRM with a Python handler: Python's signal
    // wakeup fd is the core's interrupt pipe, so it cuts any wait short, and
    // the handler's exception (a BaseException, like KeyboardInterrupt, so
    // `except Exception` in a script cannot swallow it) unwinds the script.
    py::dict timeout_scope;
    timeout_scope["message"] = py::str([&] {
      char buffer[128];
      std::snprintf(buffer, sizeof buffer, "global timeout of %g seconds reached: test terminating", global_timeout);
      return std::string(buffer);
    }());
    // No newline first: pybind11 would import textwrap to dedent the code.
    py::exec(R"(class GlobalTimeout(BaseException):
    pass
def on_alarm(signum, frame):
    raise GlobalTimeout(message)
)", timeout_scope);
    auto set_alarm = [&](double seconds) {
      signal.attr("setitimer")(signal.attr("ITIMER_REAL"), seconds);
    };
    try {
      if (!interactive) {
        signal.attr("signal")(signal.attr("SIGALRM"), timeout_scope["on_alarm"]);
        set_alarm(global_timeout);
      }
      driver = Driver(start_scripts, vlan_numbers, script_text.str(),
                      std::filesystem::absolute(out_dir).lexically_normal().string(), keep_vm_state);
      driver.attr("_script_path") = testscript;
      if (interactive) {
        td::cli::run_repl(driver.attr("test_symbols")());
      } else {
        auto tic = std::chrono::steady_clock::now();
        driver.attr("run_tests")();
        std::chrono::duration<double> took = std::chrono::steady_clock::now() - tic;
        char buffer[64];
        std::snprintf(buffer, sizeof buffer, "test script finished in %.2fs", took.count());
        rootlog.attr("info")(buffer);
      }
    } catch (py::error_already_set& e) {
      // The JUnit report's "main" case, unless a subtest already has it.
      rootlog.attr("record_failure")(e.value());
      if (e.matches(timeout_scope["GlobalTimeout"])) {
        rootlog.attr("error")(timeout_scope["message"]);
        status = 1;
      } else if (e.matches(PyExc_KeyboardInterrupt)) {
        rootlog.attr("error")("interrupted: cleaning up");
        status = 130;
      } else if (e.matches(PyExc_SystemExit)) {
        py::object code = e.value().attr("code");
        status = code.is_none() ? 0 : py::isinstance<py::int_>(code) ? code.cast<int>() : 1;
      } else {
        std::cerr << format_exception(e);
        rootlog.attr("error")("test script failed: " + py::str(e.value()).cast<std::string>());
        status = 1;
      }
    }
    set_alarm(0);
    if (driver) {
      // Cleanup is not interruptible (it is bounded); a signal that arrives
      // meanwhile surfaces here, after it, and must not skip closing the log.
      try {
        driver.attr("cleanup")();
        if (PyErr_CheckSignals() != 0) throw py::error_already_set();
      } catch (py::error_already_set& e) {
        if (!e.matches(PyExc_KeyboardInterrupt)) throw;
        rootlog.attr("error")("interrupted during cleanup (cleanup finished)");
        status = status ? status : 130;
      }
    }
    rootlog.attr("close")();
  } catch (py::error_already_set& e) {
    std::cerr << format_exception(e);
    status = status ? status : 1;
  } catch (const std::exception& e) {
    std::cerr << "nixos-test-driver: " << e.what() << "\n";
    status = status ? status : 1;
  }
  return status;
}
