#include "repl.h"

namespace py = pybind11;
using namespace py::literals;

namespace td::cli {

void run_repl(py::dict symbols) {
  py::module_::import("code").attr("interact")("local"_a = symbols, "banner"_a = "", "exitmsg"_a = "");
}

}  // namespace td::cli
