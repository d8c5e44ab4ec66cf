#include "test_driver/image.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>

#include "test_driver/errors.h"
#include "test_driver/host_files.h"
#include "test_driver/process.h"

namespace td {
namespace {

constexpr auto kToolTimeout = std::chrono::seconds(120);
// Larger than any screen; bounds what a corrupt header can make us allocate.
constexpr size_t kMaxSide = 1 << 15;

// The header of a netpbm file: tokens separated by whitespace, with "#"
// comments to the end of the line.
class HeaderReader {
 public:
  HeaderReader(std::string_view bytes, const std::string& what) : bytes_(bytes), what_(what) {}

  size_t number(const char* field) {
    skip_space_and_comments();
    size_t start = pos_;
    size_t value = 0;
    while (pos_ < bytes_.size() && std::isdigit(static_cast<unsigned char>(bytes_[pos_]))) {
      value = value * 10 + size_t(bytes_[pos_] - '0');
      if (value > std::numeric_limits<uint32_t>::max())
        throw Error(fmt::format("{} is not a valid netpbm image: its {} is too large", what_, field));
      ++pos_;
    }
    if (pos_ == start)
      throw Error(fmt::format("{} is not a valid netpbm image: its header lacks the {}{}", what_, field,
                              pos_ >= bytes_.size() ? " (the file ends first)" : ""));
    return value;
  }

  // After the last number: exactly one whitespace character, then the data.
  size_t data_start() {
    if (pos_ >= bytes_.size() || !std::isspace(static_cast<unsigned char>(bytes_[pos_])))
      throw Error(fmt::format("{} is not a valid netpbm image: no whitespace between header and data", what_));
    return pos_ + 1;
  }

 private:
  void skip_space_and_comments() {
    while (pos_ < bytes_.size()) {
      char c = bytes_[pos_];
      if (c == '#') {
        while (pos_ < bytes_.size() && bytes_[pos_] != '\n') ++pos_;
      } else if (std::isspace(static_cast<unsigned char>(c))) {
        ++pos_;
      } else {
        return;
      }
    }
  }

  std::string_view bytes_;
  const std::string& what_;
  size_t pos_ = 2;  // after the magic number
};

void check_same_size(const Image& actual, const Image& reference, const std::string& actual_name,
                     const std::string& reference_name) {
  if (actual.width() != reference.width() || actual.height() != reference.height())
    throw Error(fmt::format("cannot compare {} ({}) with {} ({}): they differ in size", actual_name,
                            actual.size_string(), reference_name, reference.size_string()));
}

bool pixels_differ(const uint8_t* a, const uint8_t* b, int tolerance) {
  for (int c = 0; c < 3; ++c)
    if (std::abs(int(a[c]) - int(b[c])) > tolerance) return true;
  return false;
}

void check_channel_tolerance(int channel) {
  if (channel < 0 || channel > 255)
    throw Error(fmt::format("the channel tolerance must be between 0 and 255, not {}", channel));
}

}  // namespace

std::string ImageRegion::to_string() const { return fmt::format("({}, {}, {}, {})", x, y, width, height); }

Image::Image(size_t width, size_t height) : width_(width), height_(height), rgb_(width * height * 3, 0) {
  if (width == 0 || height == 0 || width > kMaxSide || height > kMaxSide)
    throw Error(fmt::format("cannot make an image of {}x{} pixels", width, height));
}

std::string Image::size_string() const { return fmt::format("{}x{}", width_, height_); }

Image Image::parse_netpbm(std::string_view bytes, const std::string& what) {
  if (bytes.size() < 2 || bytes[0] != 'P' || (bytes[1] != '4' && bytes[1] != '5' && bytes[1] != '6')) {
    std::string start;
    for (char c : bytes.substr(0, 8)) start += std::isprint(static_cast<unsigned char>(c)) ? c : '?';
    throw Error(fmt::format("{} is not a binary netpbm image (P4, P5 or P6): it starts with \"{}\"", what, start));
  }
  char kind = bytes[1];
  HeaderReader header(bytes, what);
  size_t width = header.number("width");
  size_t height = header.number("height");
  size_t maxval = kind == '4' ? 1 : header.number("maxval");
  if (width == 0 || height == 0 || width > kMaxSide || height > kMaxSide)
    throw Error(fmt::format("{} is not a valid netpbm image: its size {}x{} is out of range (1 to {} a side)", what,
                            width, height, kMaxSide));
  if (maxval == 0 || maxval > 65535)
    throw Error(fmt::format("{} is not a valid netpbm image: its maxval {} is not between 1 and 65535", what, maxval));
  size_t start = header.data_start();
  size_t sample_bytes = maxval > 255 ? 2 : 1;
  size_t row_bytes = kind == '4' ? (width + 7) / 8 : width * sample_bytes * (kind == '6' ? 3 : 1);
  size_t needed = row_bytes * height;
  size_t have = bytes.size() >= start ? bytes.size() - start : 0;
  if (have < needed)
    throw Error(fmt::format("{} is truncated: its {}x{} pixels need {} bytes of data, it has {}", what, width, height,
                            needed, have));

  Image image(width, height);
  const auto* data = reinterpret_cast<const uint8_t*>(bytes.data() + start);
  auto sample = [&](size_t index) -> uint8_t {
    size_t value = sample_bytes == 2 ? (size_t(data[index * 2]) << 8) | data[index * 2 + 1] : data[index];
    if (value > maxval) value = maxval;
    return maxval == 255 ? uint8_t(value) : uint8_t((value * 255 + maxval / 2) / maxval);
  };
  for (size_t y = 0; y < height; ++y)
    for (size_t x = 0; x < width; ++x) {
      uint8_t* out = image.pixel(x, y);
      if (kind == '6') {
        for (size_t c = 0; c < 3; ++c) out[c] = sample((y * width + x) * 3 + c);
      } else if (kind == '5') {
        out[0] = out[1] = out[2] = sample(y * width + x);
      } else {  // P4: one bit a pixel, 1 is black, rows padded to bytes
        bool black = (data[y * row_bytes + x / 8] >> (7 - x % 8)) & 1;
        out[0] = out[1] = out[2] = black ? 0 : 255;
      }
    }
  return image;
}

Image Image::read_netpbm(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("cannot read the image {}: it does not exist or is not readable", path.string()));
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return parse_netpbm(bytes.str(), path.string());
}

std::string Image::to_ppm() const {
  std::string out = fmt::format("P6\n{} {}\n255\n", width_, height_);
  out.append(reinterpret_cast<const char*>(rgb_.data()), rgb_.size());
  return out;
}

Image Image::read_png(const std::filesystem::path& path) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error))
    throw Error(fmt::format("cannot read the image {}: it does not exist or is not a file", path.string()));
  Process::Options convert;
  // Absolute, so that no file name is taken for an option.
  convert.argv = {"pngtopnm", std::filesystem::absolute(path).string()};
  convert.capture_stderr_apart = true;
  Process::Result result = Process::run(convert, kToolTimeout);
  if (!result.exited_normally()) {
    std::string said = result.error;
    while (!said.empty() && std::isspace(static_cast<unsigned char>(said.back()))) said.pop_back();
    throw Error(fmt::format("cannot read the PNG {}: pngtopnm failed ({}): {}", path.string(), result.exit_code(),
                            said));
  }
  return parse_netpbm(result.output, fmt::format("pngtopnm's output for {}", path.string()));
}

void Image::write_png(const std::filesystem::path& path, const std::filesystem::path& scratch) const {
  std::filesystem::path ppm = scratch / (path.filename().string() + ".ppm");
  write_host_file(ppm, to_ppm());
  // The PNG comes back through a pipe and is written here, so that a full
  // disk is named as such (pnmtopng says only "Write Error").
  Process::Options convert;
  convert.argv = {"pnmtopng", std::filesystem::absolute(ppm).string()};
  convert.capture_stderr_apart = true;
  Process::Result result;
  try {
    result = Process::run(convert, kToolTimeout);
  } catch (...) {
    std::filesystem::remove(ppm);
    throw;
  }
  std::filesystem::remove(ppm);
  if (!result.exited_normally())
    throw Error(fmt::format("cannot write the PNG {}: pnmtopng failed ({}): {}", path.string(), result.exit_code(),
                            result.error));
  write_host_file(path, result.output);
}

Image Image::crop(const ImageRegion& region, const std::string& what) const {
  if (region.width <= 0 || region.height <= 0 || region.x < 0 || region.y < 0 ||
      region.x + region.width > int64_t(width_) || region.y + region.height > int64_t(height_))
    throw Error(fmt::format("the region {} ({}x{} at x={}, y={}) does not lie inside {} ({}){}", region.to_string(),
                            region.width, region.height, region.x, region.y, what, size_string(),
                            region.width <= 0 || region.height <= 0 ? ": it is empty" : ""));
  Image out(size_t(region.width), size_t(region.height));
  for (size_t row = 0; row < out.height_; ++row) {
    const uint8_t* from = pixel(size_t(region.x), size_t(region.y) + row);
    std::copy(from, from + out.width_ * 3, out.pixel(0, row));
  }
  return out;
}

std::string ImageComparison::describe() const {
  return fmt::format("{} of {} pixels ({:.2f}%) differ", differing, total, fraction() * 100);
}

ImageComparison compare_images(const Image& actual, const Image& reference, const ImageTolerance& tolerance,
                               const std::string& actual_name, const std::string& reference_name) {
  check_channel_tolerance(tolerance.channel);
  if (!(tolerance.threshold >= 0.0 && tolerance.threshold <= 1.0))
    throw Error(fmt::format("the threshold is the fraction of pixels that may differ, between 0 and 1, not {}",
                            tolerance.threshold));
  check_same_size(actual, reference, actual_name, reference_name);
  ImageComparison result;
  result.total = actual.width() * actual.height();
  for (size_t y = 0; y < actual.height(); ++y)
    for (size_t x = 0; x < actual.width(); ++x)
      if (pixels_differ(actual.pixel(x, y), reference.pixel(x, y), tolerance.channel)) ++result.differing;
  result.matches = double(result.differing) <= tolerance.threshold * double(result.total);
  return result;
}

Image difference_image(const Image& actual, const Image& reference, int channel_tolerance) {
  check_channel_tolerance(channel_tolerance);
  check_same_size(actual, reference, "the actual image", "the reference");
  Image out(actual.width(), actual.height());
  for (size_t y = 0; y < actual.height(); ++y)
    for (size_t x = 0; x < actual.width(); ++x) {
      const uint8_t* a = actual.pixel(x, y);
      uint8_t* o = out.pixel(x, y);
      if (pixels_differ(a, reference.pixel(x, y), channel_tolerance)) {
        o[0] = 255;
        o[1] = 0;
        o[2] = 0;
      } else {
        for (int c = 0; c < 3; ++c) o[c] = uint8_t(a[c] / 3);
      }
    }
  return out;
}

}  // namespace td
