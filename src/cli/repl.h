// The interactive console of `nixos-test-driver -I`: a Python REPL whose
// globals are the test script's symbols.
#pragma once

#include <pybind11/pybind11.h>

namespace td::cli {

// Runs the REPL until the user leaves it (Ctrl-D). Returns normally; the
// caller cleans up the driver afterwards.
void run_repl(pybind11::dict symbols);

}  // namespace td::cli
