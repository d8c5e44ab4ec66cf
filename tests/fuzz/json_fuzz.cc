// libFuzzer target: td::Json::parse on arbitrary bytes (what a QMP socket
// could send), and the dump/parse round trip of what parses.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "test_driver/errors.h"
#include "test_driver/json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  try {
    td::Json value = td::Json::parse(input);
    std::string text = value.dump();
    FUZZ_CHECK(td::Json::parse(text).dump() == text);
  } catch (const td::Error&) {
    // Rejected with an error: fine. Anything else (a crash) is a bug.
  }
  return 0;
}
