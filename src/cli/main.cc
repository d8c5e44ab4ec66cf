// nixos-test-driver: parses the reference's command line (CLI11), then hands
// the options to test_driver.run_cli() in an embedded Python interpreter,
// which does the rest (python/test_driver/__init__.py), so the executable
// and `import test_driver` share one core.
#include <pybind11/embed.h>
#include <pybind11/stl.h>

#include "repl.h"

#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

namespace py = pybind11;

namespace {

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

// An option's value, or None when the command line does not give it (the
// config file or the environment may then).
template <typename T>
py::object given(const CLI::Option* option, const T& value) {
  return option->count() == 0 ? py::none() : py::cast(value);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Run a NixOS VM test script against QEMU machines.", "nixos-test-driver"};
  bool keep_vm_state = false;
  bool interactive = false;
  std::vector<std::string> start_scripts;
  std::vector<std::string> vlans;
  std::string output_directory;
  std::string testscript;
  std::string config_path;
  std::string junit_xml;
  std::string html_report;
  bool keep_going = false;
  // Unset ones default in run_cli (after the config file and the environment).
  std::string log_level;
  double global_timeout = 0;
  app.add_flag("-K,--keep-vm-state,--keep-machine-state", keep_vm_state,
               "re-use a VM state coming from a previous run");
  app.add_flag("-I,--interactive,!--no-interactive", interactive, "drop into a python repl and run the tests interactively");
  auto* scripts_opt = app.add_option("--start-scripts", start_scripts,
                                     "start scripts for participating virtual machines (default: $startScripts)");
  auto* vlans_opt = app.add_option("--vlans", vlans, "vlans to span by the driver (default: $vlans)");
  // Like argparse's nargs="*": no values is fine, and an option ends the list.
  scripts_opt->expected(0, CLI::detail::expected_max_vector_size);
  vlans_opt->expected(0, CLI::detail::expected_max_vector_size);
  auto* output_opt = app.add_option("-o,--output_directory", output_directory,
                                    "The path to the directory where outputs copied from the VM will be placed. By e.g. "
                                    "Machine.copy_from_vm or Machine.screenshot");
  auto* timeout_opt = app.add_option("--global-timeout", global_timeout,
                                     "end the run after this many seconds (default: $globalTimeout or 3600)");
  auto* config_opt = app.add_option("-c,--config", config_path,
                                    "a JSON driver configuration (keys vms, vlans, global_timeout, test_script), "
                                    "instead of --start-scripts, --vlans, --global-timeout and testscript; those "
                                    "flags override its keys");
  auto* junit_opt = app.add_option("--junit-xml", junit_xml,
                                   "write a JUnit XML report (one test case per subtest) to this path, relative to "
                                   "the output directory; written also when the run fails or is interrupted");
  auto* report_opt = app.add_option("--html-report", html_report,
                                    "write an HTML report (steps, serial consoles, screenshots, timing; one "
                                    "self-contained file) to this path, relative to the output directory; written "
                                    "also when the run fails or is interrupted");
  auto* keep_going_opt = app.add_flag("--keep-going", keep_going,
                                      "a failing top-level subtest is recorded and the script goes on with the "
                                      "next; the run fails at the end, listing every failed subtest");
  auto* level_opt = app.add_option("--log-level", log_level,
                                   "the lowest level of log lines shown on the terminal: debug, info, warning or "
                                   "error (default: $logLevel or info)");
  std::string boot_cache;
  auto* boot_cache_opt = app.add_option("--boot-cache", boot_cache,
                                        "a directory of snapshots taken right after each machine's backdoor "
                                        "connected: a machine whose boot is there is restored instead of booted, "
                                        "one that is not is booted and saved (default: $TEST_DRIVER_BOOT_CACHE)");
  bool video = false;
  auto* video_opt = app.add_flag("--video", video,
                                 "record each QEMU machine's screen (2 frames a second) to "
                                 "<output directory>/<machine>.webm with ffmpeg; written also when the run fails "
                                 "or is interrupted (default: $TEST_DRIVER_VIDEO=1)");
  std::string debug_hook_attach;
  auto* debug_opt = app.add_option("--debug-hook-attach", debug_hook_attach,
                                   "Enable interactive debugging breakpoints for sandboxed runs: at debug.breakpoint() "
                                   "and when the test script fails, print 'sudo ATTACH PATTERN' (ATTACH is this "
                                   "value, printed, never run) and serve a Python debugger (pdb) on 127.0.0.1:4444 "
                                   "until one attaches or the global timeout ends the run");
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
  // pybind11's default configuration, with the home set: left unset,
  // Python derives it from the first python3 on PATH, and another Python
  // there (pyenv's, a broken one) would lend us its standard library.
  PyConfig config;
  PyConfig_InitIsolatedConfig(&config);
  config.isolated = 0;
  config.use_environment = 1;
  config.install_signal_handlers = 1;
  PyConfig_SetBytesString(&config, &config.home, TD_PYTHON_HOME);
  py::scoped_interpreter interpreter(&config);

  try {
    add_package_path();
    py::dict options;
    options["keep_vm_state"] = keep_vm_state;
    options["interactive"] = interactive;
    options["start_scripts"] = given(scripts_opt, start_scripts);
    options["vlans"] = given(vlans_opt, vlans);
    options["output_directory"] = given(output_opt, output_directory);
    options["global_timeout"] = given(timeout_opt, global_timeout);
    options["config"] = given(config_opt, config_path);
    options["junit_xml"] = given(junit_opt, junit_xml);
    options["html_report"] = given(report_opt, html_report);
    options["keep_going"] = given(keep_going_opt, keep_going);
    options["log_level"] = given(level_opt, log_level);
    options["boot_cache"] = given(boot_cache_opt, boot_cache);
    options["video"] = given(video_opt, video);
    options["debug_hook_attach"] = given(debug_opt, debug_hook_attach);
    options["generate_driver_symbols"] = generate_symbols;
    options["testscript"] = given(script_opt, testscript);
    py::object run_cli = py::module_::import("test_driver").attr("run_cli");
    return run_cli(options, py::cpp_function(&td::cli::run_repl)).cast<int>();
  } catch (py::error_already_set& e) {
    // Only what run_cli leaves: a broken installation, --generate-driver-symbols.
    e.restore();
    PyErr_Print();
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "nixos-test-driver: " << e.what() << "\n";
    return 1;
  }
}
