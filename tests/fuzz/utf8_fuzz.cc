// libFuzzer target: the UTF-8 repair and XML/control stripping applied to
// everything a guest prints.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "test_driver/utf8.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string text = td::to_valid_utf8(input);
  FUZZ_CHECK(fuzz::valid_utf8(text));
  if (fuzz::valid_utf8(input)) FUZZ_CHECK(text == input);  // valid text is left alone
  FUZZ_CHECK(td::to_valid_utf8(text) == text);             // idempotent

  std::string xml = td::strip_xml_forbidden(text);
  FUZZ_CHECK(fuzz::decode_utf8(xml, [](uint32_t cp) { FUZZ_CHECK(fuzz::xml_char(cp)); }));
  FUZZ_CHECK(xml.size() <= text.size());

  std::string plain = td::strip_control(text);
  FUZZ_CHECK(fuzz::decode_utf8(plain, [](uint32_t cp) {
    FUZZ_CHECK(cp >= 0x20 && cp != 0x7F && !(cp >= 0x80 && cp <= 0x9F));
  }));
  return 0;
}
