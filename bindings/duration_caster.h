// td::Duration from Python: seconds (int or float) or a datetime.timedelta.
// None stands for the wait's default (kDefaultTimeout); a parameter where
// None means "no limit" is std::optional<td::Duration>, whose caster takes
// None first. Negative, NaN and bool are refused with an error naming the
// value. To Python it is a number of seconds.
#pragma once

#include <pybind11/pybind11.h>

#include <cmath>

#include "test_driver/duration.h"
#include "test_driver/errors.h"

namespace pybind11::detail {

template <>
struct type_caster<td::Duration> {
  PYBIND11_TYPE_CASTER(td::Duration, const_name("float"));

  bool load(handle src, bool) {
    if (src.is_none()) {
      value = td::kDefaultTimeout;
      return true;
    }
    if (PyBool_Check(src.ptr()))
      throw type_error("timeout must be a number of seconds or a datetime.timedelta, got " + std::string(repr(src)));
    double seconds;
    if (hasattr(src, "total_seconds")) {
      seconds = src.attr("total_seconds")().cast<double>();
    } else {
      seconds = PyFloat_AsDouble(src.ptr());
      if (seconds == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        throw type_error("timeout must be a number of seconds or a datetime.timedelta, got " + std::string(repr(src)));
      }
    }
    if (!(seconds >= 0)) throw td::Error("timeout must not be negative, got " + std::string(repr(src)));
    value = td::Duration(seconds);
    return true;
  }

  // Whole seconds as an int, so that signatures read "timeout=60", not 60.0.
  static handle cast(const td::Duration& duration, return_value_policy, handle) {
    double seconds = duration.seconds();
    if (seconds == static_cast<double>(static_cast<long long>(seconds))) return PyLong_FromLongLong(static_cast<long long>(seconds));
    return PyFloat_FromDouble(seconds);
  }
};

}  // namespace pybind11::detail
