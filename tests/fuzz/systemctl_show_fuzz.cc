// libFuzzer target: td::parse_systemctl_show on arbitrary guest output.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "test_driver/systemctl_show.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  for (const auto& [key, value] : td::parse_systemctl_show(input)) {
    FUZZ_CHECK(!key.empty() && key.find('=') == std::string::npos && key.find('\n') == std::string::npos);
    FUZZ_CHECK(value.find('\n') == std::string::npos);
  }
  return 0;
}
