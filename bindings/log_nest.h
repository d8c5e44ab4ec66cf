// A nest of the driver's log as a Python context manager (rootlog.nested,
// machine.nested), and log attributes from a Python dict.
#pragma once

#include <pybind11/pybind11.h>

#include <string>

#include "script_line.h"
#include "test_driver/logger.h"

namespace td_bindings {

struct LogNest {
  std::string message;
  td::LogAttributes attributes;
  bool open = false;
  void enter() {
    td::RunRecord::ScriptLine line(current_script_line());
    td::rootlog().begin_nest(message, attributes);
    open = true;
  }
  // `failed`: an exception leaves the block.
  void exit(bool failed = false) {
    if (open) td::rootlog().end_nest(failed);
    open = false;
  }
};

inline td::LogAttributes to_attributes(const pybind11::object& attributes) {
  td::LogAttributes out;
  if (attributes.is_none()) return out;
  for (auto item : attributes.cast<pybind11::dict>())
    out.emplace_back(pybind11::str(item.first), pybind11::str(item.second));
  return out;
}

}  // namespace td_bindings
