// libFuzzer target: td::split_command_line (start commands, $QEMU_OPTS) and
// the quoting it must invert.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_util.h"
#include "test_driver/errors.h"
#include "test_driver/shell_words.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  try {
    std::vector<std::string> words = td::split_command_line(input);
    // Joining the words quoted and splitting again gives the same words.
    FUZZ_CHECK(td::split_command_line(td::shell_join(words)) == words);
  } catch (const td::Error&) {
    // an unclosed quote or a trailing backslash: a clear error is fine
  }
  // Any bytes as one word survive quoting.
  std::string word(input);
  auto back = td::split_command_line(td::shell_quote(word));
  FUZZ_CHECK(back.size() == 1 && back[0] == word);
  return 0;
}
