// A regular expression as a wait gets it: its text, for messages, and the
// test itself. The bindings make it from Python's re, so that scripts keep
// Python's regex dialect.
#pragma once

#include <functional>
#include <string>

namespace td {

struct TextPattern {
  std::string text;
  // True when the expression matches somewhere in the text (re.search).
  std::function<bool(const std::string&)> matches;
};

}  // namespace td
