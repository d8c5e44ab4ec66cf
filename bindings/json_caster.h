// td::Json to and from Python objects, through Python's json module: the
// core speaks QMP's JSON, scripts see dicts, lists and numbers. None is
// JSON's null.
#pragma once

#include <pybind11/pybind11.h>

#include "test_driver/json.h"

namespace pybind11::detail {

template <>
struct type_caster<td::Json> {
  PYBIND11_TYPE_CASTER(td::Json, const_name("Any"));

  bool load(handle src, bool) {
    if (src.is_none()) {
      value = td::Json();
      return true;
    }
    value = td::Json::parse(module_::import("json").attr("dumps")(src).cast<std::string>());
    return true;
  }

  static handle cast(const td::Json& json, return_value_policy, handle) {
    return module_::import("json").attr("loads")(json.dump()).release();
  }
};

}  // namespace pybind11::detail
