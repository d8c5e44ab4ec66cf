// libFuzzer target: td::base64_decode on arbitrary guest output (the shell
// protocol's frames), and the encode/decode round trip.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "test_driver/base64.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  // Any input: decodes or says it is not base64; never crashes.
  if (auto decoded = td::base64_decode(input)) {
    // What decodes re-encodes to something that decodes to the same bytes.
    auto again = td::base64_decode(td::base64_encode(*decoded));
    FUZZ_CHECK(again && *again == *decoded);
    FUZZ_CHECK(decoded->size() <= input.size());
  }
  // Any bytes survive a round trip.
  auto round = td::base64_decode(td::base64_encode(input));
  FUZZ_CHECK(round && *round == input);
  return 0;
}
