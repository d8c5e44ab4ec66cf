// libFuzzer target: td::Image::parse_netpbm on arbitrary files (QEMU's
// screendump and pngtopnm's output of a reference PNG a test names). What
// parses writes back as a P6 that parses to the same image, crops to itself
// whole, and matches itself exactly.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_util.h"
#include "test_driver/errors.h"
#include "test_driver/image.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  td::Image image;
  try {
    image = td::Image::parse_netpbm(std::string_view(reinterpret_cast<const char*>(data), size), "input");
  } catch (const td::Error&) {
    return 0;
  }
  FUZZ_CHECK(image.width() >= 1 && image.height() >= 1);
  td::Image again = td::Image::parse_netpbm(image.to_ppm(), "written");
  FUZZ_CHECK(again == image);
  td::ImageRegion whole{0, 0, int64_t(image.width()), int64_t(image.height())};
  FUZZ_CHECK(image.crop(whole) == image);
  auto result = td::compare_images(image, again, {0, 0.0});
  FUZZ_CHECK(result.matches && result.differing == 0 && result.total == image.width() * image.height());
  return 0;
}
