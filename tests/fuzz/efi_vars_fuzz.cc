// libFuzzer target: td::efi::parse_store on arbitrary variable store files
// (a guest writes the store; the driver reads it after the machine stopped),
// and rewrite_store of what it read, which must read back the same.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fuzz_util.h"
#include "test_driver/efi_vars.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> image(data, data + size);
  std::vector<td::efi::Variable> records;
  try {
    records = td::efi::parse_store(image);
  } catch (const td::efi::EfiStoreError&) {
    return 0;
  }
  for (const auto& v : records) FUZZ_CHECK(v.name.find(u'\0') == std::u16string::npos);
  auto live = td::efi::live_variables(records);
  FUZZ_CHECK(live.size() <= records.size());
  // What was read fits where it was read from.
  auto again = td::efi::parse_store(td::efi::rewrite_store(image, live));
  FUZZ_CHECK(again.size() == live.size());
  for (size_t i = 0; i < live.size(); ++i) {
    FUZZ_CHECK(again[i].name == live[i].name && again[i].data == live[i].data && again[i].vendor == live[i].vendor);
    FUZZ_CHECK(again[i].attributes == live[i].attributes && again[i].state == live[i].state);
  }
  return 0;
}
