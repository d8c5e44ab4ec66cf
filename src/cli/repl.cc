#include "repl.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>

namespace py = pybind11;
using namespace py::literals;

namespace td::cli {
namespace {

constexpr const char* kHistoryFile = ".nixos-test-history";
constexpr int kHistoryLength = 10000;

// The module, or None when it cannot be imported.
py::object try_import(const char* name) {
  try {
    return py::module_::import(name);
  } catch (py::error_already_set& e) {
    if (e.matches(PyExc_ImportError)) return py::none();
    throw;
  }
}

// A Ctrl-C that arrived while no wait consumed it (at the prompt, or during
// plain Python code) would cut the next command short: forget it before
// each command.
void clear_pending_interrupt() { py::module_::import("test_driver._core").attr("clear_interrupt")(); }

void write_history(const py::object& readline) {
  try {
    readline.attr("set_history_length")(kHistoryLength);
    readline.attr("write_history_file")(kHistoryFile);
  } catch (py::error_already_set& e) {
    if (!e.matches(PyExc_OSError)) throw;
    std::cerr << "nixos-test-driver: cannot write " << kHistoryFile << ": " << py::str(e.value()).cast<std::string>()
              << "\n";
  }
}

// Python's own console: code.InteractiveConsole's loop, plus readline on a
// terminal (line editing, completion of names and attributes, history).
void run_console(py::dict symbols) {
  py::module_ sys = py::module_::import("sys");
  if (!py::hasattr(sys, "ps1")) sys.attr("ps1") = ">>> ";
  if (!py::hasattr(sys, "ps2")) sys.attr("ps2") = "... ";
  bool tty = !sys.attr("stdin").is_none() && sys.attr("stdin").attr("isatty")().cast<bool>() &&
             !sys.attr("stdout").is_none() && sys.attr("stdout").attr("isatty")().cast<bool>();
  py::object readline = tty ? try_import("readline") : py::none();
  if (!readline.is_none()) {
    py::object completer = py::module_::import("rlcompleter").attr("Completer")(symbols);
    readline.attr("set_completer")(completer.attr("complete"));
    readline.attr("parse_and_bind")("tab: complete");
    if (std::filesystem::exists(kHistoryFile)) {
      try {
        readline.attr("read_history_file")(kHistoryFile);
      } catch (py::error_already_set& e) {
        if (!e.matches(PyExc_OSError)) throw;
      }
    }
  }
  py::object console = py::module_::import("code").attr("InteractiveConsole")(symbols);
  bool more = false;
  try {
    for (;;) {
      try {
        py::object line = console.attr("raw_input")(more ? sys.attr("ps2") : sys.attr("ps1"));
        clear_pending_interrupt();
        more = console.attr("push")(line).cast<bool>();
      } catch (py::error_already_set& e) {
        if (e.matches(PyExc_EOFError)) {
          console.attr("write")("\n");
          break;
        }
        if (!e.matches(PyExc_KeyboardInterrupt)) throw;
        console.attr("write")("\nKeyboardInterrupt\n");
        console.attr("resetbuffer")();
        more = false;
      }
    }
  } catch (...) {
    if (!readline.is_none()) write_history(readline);
    throw;
  }
  if (!readline.is_none()) write_history(readline);
}

}  // namespace

void run_repl(py::dict symbols) {
  const char* env = std::getenv("TD_REPL");
  std::string choice = env && *env ? env : "auto";
  if (choice != "auto" && choice != "ptpython" && choice != "ipython" && choice != "console") {
    std::cerr << "nixos-test-driver: TD_REPL must be auto, ptpython, ipython or console, not '" << choice
              << "'; using auto\n";
    choice = "auto";
  }
  // ptpython and IPython need a terminal; piped commands go to the console.
  bool tty = ::isatty(STDIN_FILENO) && ::isatty(STDOUT_FILENO);
  if (tty && (choice == "auto" || choice == "ptpython")) {
    py::object ptpython = try_import("ptpython.repl");
    if (!ptpython.is_none()) {
      // As the reference: the script's symbols are ptpython's globals (so
      // they are completed), and the history is .nixos-test-history in the
      // working directory (in ptpython's own file format).
      ptpython.attr("embed")(symbols, py::dict(), "history_filename"_a = kHistoryFile);
      return;
    }
    if (choice == "ptpython") std::cerr << "nixos-test-driver: ptpython is not installed; using the plain console\n";
  }
  if (tty && (choice == "auto" || choice == "ipython")) {
    py::object ipython = try_import("IPython");
    if (!ipython.is_none()) {
      ipython.attr("start_ipython")("argv"_a = py::list(), "user_ns"_a = symbols);
      return;
    }
    if (choice == "ipython") std::cerr << "nixos-test-driver: IPython is not installed; using the plain console\n";
  }
  run_console(symbols);
}

}  // namespace td::cli
