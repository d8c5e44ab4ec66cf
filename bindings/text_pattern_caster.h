// td::TextPattern from a Python regular expression (str or re.Pattern),
// compiled with re so that scripts keep Python's dialect; a bad pattern is
// an error naming it. The test takes the GIL, as the core calls it from
// waits that run without it.
#pragma once

#include <pybind11/pybind11.h>

#include "test_driver/errors.h"
#include "test_driver/text_pattern.h"

namespace pybind11::detail {

template <>
struct type_caster<td::TextPattern> {
  PYBIND11_TYPE_CASTER(td::TextPattern, const_name("Union[str, re.Pattern[str]]"));

  bool load(handle src, bool) {
    object compiled;
    try {
      compiled = module_::import("re").attr("compile")(src);
    } catch (error_already_set& e) {
      throw td::Error("invalid regular expression " + std::string(repr(src)) + ": " + std::string(str(e.value())));
    }
    value.text = str(compiled.attr("pattern"));
    value.matches = [compiled](const std::string& text) {
      gil_scoped_acquire gil;
      return !compiled.attr("search")(text).is_none();
    };
    return true;
  }

  static handle cast(const td::TextPattern& pattern, return_value_policy, handle) {
    return str(pattern.text).release();
  }
};

}  // namespace pybind11::detail
