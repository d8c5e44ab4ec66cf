// Where in the test script a call into the core comes from: a call guard
// that, with the GIL still held, finds the innermost frame of the test
// script (the file the command line named, set_script_file) and keeps its
// line for the call's length (run_record.h's ScriptLine), so that the steps
// the call makes carry it into the timing profile and the HTML report.
#pragma once

#include <Python.h>
#include <frameobject.h>

#include "test_driver/run_record.h"

namespace td_bindings {

// The test script's file name (a str), or null before the command line sets it.
inline PyObject*& script_file() {
  static PyObject* file = nullptr;
  return file;
}

inline void set_script_file(const std::string& path) {
  PyObject* text = PyUnicode_DecodeFSDefault(path.c_str());
  if (!text) throw pybind11::error_already_set();
  Py_XDECREF(script_file());
  script_file() = text;
}

// The line of the innermost frame of the test script, 0 when there is none
// (a call from the REPL or from another module). Needs the GIL.
inline int current_script_line() {
  PyObject* file = script_file();
  if (!file) return 0;
  PyFrameObject* frame = PyEval_GetFrame();  // borrowed
  Py_XINCREF(frame);
  int line = 0;
  for (int depth = 0; frame && depth < 64 && line == 0; ++depth) {
    PyCodeObject* code = PyFrame_GetCode(frame);
    if (PyUnicode_Compare(code->co_filename, file) == 0) line = PyFrame_GetLineNumber(frame);
    Py_DECREF(code);
    PyFrameObject* back = PyFrame_GetBack(frame);
    Py_DECREF(frame);
    frame = back;
  }
  Py_XDECREF(frame);
  PyErr_Clear();  // a comparison that failed is no line
  return line;
}

// First of a call's guards (before the GIL is released).
struct ScriptLineGuard {
  td::RunRecord::ScriptLine scope{current_script_line()};
};

}  // namespace td_bindings
