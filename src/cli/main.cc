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
#include <sstream>

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

std::string format_exception(const py::error_already_set& e) {
  py::module_ traceback = py::module_::import("traceback");
  // trace() is null for an exception raised outside any Python frame (a
  // SyntaxError from compile(), an error from the Driver's constructor).
  py::object trace = e.trace() ? py::reinterpret_borrow<py::object>(e.trace()) : py::none();
  py::list lines = traceback.attr("format_exception")(e.type(), e.value(), trace);
  return py::str("").attr("join")(lines).cast<std::string>();
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
  double global_timeout = 3600;
  app.add_flag("-K,--keep-vm-state", keep_vm_state, "re-use a VM state coming from a previous run");
  app.add_flag("-I,--interactive,!--no-interactive", interactive, "drop into a python repl and run the tests interactively");
  auto* scripts_opt = app.add_option("--start-scripts", start_scripts,
                                     "start scripts for participating virtual machines (default: $startScripts)");
  auto* vlans_opt = app.add_option("--vlans", vlans, "vlans to span by the driver (default: $vlans)");
  app.add_option("-o,--output_directory", output_directory,
                 "The path to the directory where outputs copied from the VM will be placed. By e.g. "
                 "Machine.copy_from_vm or Machine.screenshot");
  auto* timeout_opt = app.add_option("--global-timeout", global_timeout,
                                     "end the run after this many seconds (default: $globalTimeout or 3600)");
  bool generate_symbols = false;
  app.add_flag("--generate-driver-symbols", generate_symbols,
               "write the names a test script sees, comma-separated, to ./driver-symbols (for pyflakes) and exit");
  auto* script_opt = app.add_option("testscript", testscript, "the test script to run (default: $testScript)");
  CLI11_PARSE(app, argc, argv);

  if (generate_symbols) {  // test_driver.generate_driver_symbols(), as the reference's entry point
    py::scoped_interpreter interpreter;
    try {
      add_package_path();
      py::module_::import("test_driver").attr("generate_driver_symbols")();
      return 0;
    } catch (py::error_already_set& e) {
      std::cerr << format_exception(e);
      return 1;
    }
  }

  if (scripts_opt->count() == 0)
    if (const char* env = std::getenv("startScripts")) start_scripts = split_words(env);
  if (vlans_opt->count() == 0)
    if (const char* env = std::getenv("vlans")) vlans = split_words(env);
  if (script_opt->count() == 0) {
    if (const char* env = std::getenv("testScript")) testscript = env;
  }
  if (timeout_opt->count() == 0)
    if (const char* env = std::getenv("globalTimeout")) {
      char* end = nullptr;
      global_timeout = std::strtod(env, &end);
      if (end == env || *end != '\0') global_timeout = -1;
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
  std::vector<int> vlan_numbers;
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
  std::ifstream script_file(testscript);
  if (!script_file) {
    std::cerr << "nixos-test-driver: error: cannot read the test script " << testscript << ": "
              << std::strerror(errno) << "\n";
    return 2;
  }
  std::stringstream script_text;
  script_text << script_file.rdbuf();

  // UTF-8 mode: pybind11's isolated config leaves the C locale, where a
  // script printing a guest's non-ASCII output would raise.
  PyPreConfig preconfig;
  PyPreConfig_InitPythonConfig(&preconfig);
  preconfig.utf8_mode = 1;
  Py_PreInitialize(&preconfig);
  py::scoped_interpreter interpreter;
  try {
    py::bytes(script_text.str()).attr("decode")("utf-8");
  } catch (py::error_already_set& e) {
    std::cerr << "nixos-test-driver: error: the test script " << testscript
              << " is not UTF-8 text: " << py::str(e.value()).cast<std::string>() << "\n";
    return 2;
  }
  int status = 0;
  try {
    add_package_path();
    py::module_ signal = py::module_::import("signal");
    // SIGTERM ends the run like Ctrl-C: the script unwinds and cleanup runs.
    signal.attr("signal")(signal.attr("SIGTERM"), signal.attr("default_int_handler"));
    // So does SIGHUP: a closed terminal must not orphan the machines.
    signal.attr("signal")(signal.attr("SIGHUP"), signal.attr("default_int_handler"));
    py::object rootlog = py::module_::import("test_driver.logger").attr("rootlog");
    py::object Driver = py::module_::import("test_driver.driver").attr("Driver");
    if (!keep_vm_state) rootlog.attr("info")("Machine state will be reset. To keep it, pass --keep-vm-state");
    py::object driver;
    // The global timeout is SIGALRM with a Python handler: Python's signal
    // wakeup fd is the core's interrupt pipe, so it cuts any wait short, and
    // the handler's exception (a BaseException, like KeyboardInterrupt, so
    // `except Exception` in a script cannot swallow it) unwinds the script.
    py::dict timeout_scope;
    py::exec(R"(
import signal
class GlobalTimeout(BaseException):
    pass
def on_alarm(signum, frame):
    raise GlobalTimeout()
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
      if (e.matches(timeout_scope["GlobalTimeout"])) {
        char buffer[128];
        std::snprintf(buffer, sizeof buffer, "global timeout of %g seconds reached: test terminating", global_timeout);
        rootlog.attr("error")(buffer);
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
