// The interactive console of `nixos-test-driver -I`: a Python REPL whose
// globals are the test script's symbols.
//
// Which REPL: $TD_REPL picks one of "ptpython", "ipython" or "console";
// unset (or "auto") means the first importable of ptpython
// (`ptpython.repl.embed`, as the reference driver, with the history file
// .nixos-test-history), IPython, and Python's
// own console (code.InteractiveConsole with readline editing, tab completion
// of names and attributes, and the history file .nixos-test-history in the
// current directory). When stdin is not a terminal, the plain console always
// reads the commands from stdin.
#pragma once

#include <pybind11/pybind11.h>

namespace td::cli {

// Runs the REPL until the user leaves it (Ctrl-D). Returns normally; the
// caller cleans up the driver afterwards. Ctrl-C interrupts the running
// command and returns to the prompt. SystemExit (exit()) propagates.
void run_repl(pybind11::dict symbols);

}  // namespace td::cli
