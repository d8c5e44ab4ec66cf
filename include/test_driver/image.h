// Image: an 8-bit RGB raster for comparing screens with reference images.
// It reads netpbm's binary formats (P6 colour, which QEMU's screendump
// writes; P5 grey and P4 bitmap, which pngtopnm writes for grey PNGs) and
// writes P6; PNG files go through Debian's netpbm tools (pngtopnm,
// pnmtopng) run as argument vectors. compare_images counts the pixels whose
// channels differ by more than a tolerance; difference_image shows them red
// over a dimmed copy of the actual image.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace td {

// A rectangle in image pixels: its top-left corner and its size.
struct ImageRegion {
  int64_t x = 0;
  int64_t y = 0;
  int64_t width = 0;
  int64_t height = 0;
  // "(x, y, width, height)"
  std::string to_string() const;
};

class Image {
 public:
  Image() = default;
  // A black image of that size (both at least 1).
  Image(size_t width, size_t height);

  size_t width() const { return width_; }
  size_t height() const { return height_; }
  // "1024x768"
  std::string size_string() const;

  // The pixel's red, green and blue bytes.
  const uint8_t* pixel(size_t x, size_t y) const { return &rgb_[(y * width_ + x) * 3]; }
  uint8_t* pixel(size_t x, size_t y) { return &rgb_[(y * width_ + x) * 3]; }

  // Parses a binary netpbm image (P6, P5 or P4; header comments allowed; a
  // maxval other than 255 is scaled to 0..255). Throws td::Error naming
  // `what` and what is wrong: not netpbm, a bad header, truncated data.
  static Image parse_netpbm(std::string_view bytes, const std::string& what);
  static Image read_netpbm(const std::filesystem::path& path);
  // The image as a P6 file.
  std::string to_ppm() const;

  // Reads a PNG through `pngtopnm PATH`. Throws td::Error naming the file
  // (missing, or what pngtopnm said about it).
  static Image read_png(const std::filesystem::path& path);
  // Writes a PNG through `pnmtopng`; `scratch` is a directory for the PPM
  // it reads. Throws td::Error naming the file.
  void write_png(const std::filesystem::path& path, const std::filesystem::path& scratch) const;

  // The part of the image in `region`. Throws td::Error naming the region,
  // its size and the image's (`what`, e.g. "the screen") when it does not
  // lie wholly inside the image or is empty.
  Image crop(const ImageRegion& region, const std::string& what = "the image") const;

  bool operator==(const Image& other) const = default;

 private:
  size_t width_ = 0;
  size_t height_ = 0;
  std::vector<uint8_t> rgb_;
};

// How far a screen may be from a reference and still match it.
struct ImageTolerance {
  // A pixel differs when one of its channels is further than this from the
  // reference's (0..255): screens of the same picture drawn again can
  // differ slightly in colour (scaling, dithering) but not this much.
  int channel = 16;
  // The images match when at most this fraction of their pixels differ
  // (0: none may differ). 0.001 forgives stray pixels; a changed character
  // of the x11 guest's 16-pixel xterm text is ~80 pixels, so a region of a
  // line or two notices it, while the whole 1024x768 screen forgives up to
  // 786 pixels (about ten characters): compare a region to check text.
  double threshold = 0.001;
};

struct ImageComparison {
  size_t differing = 0;  // pixels that differ beyond the channel tolerance
  size_t total = 0;      // pixels compared
  bool matches = false;  // differing <= threshold * total
  double fraction() const { return total == 0 ? 0.0 : double(differing) / double(total); }
  // "123 of 30000 pixels (0.41%) differ"
  std::string describe() const;
};

// Compares two images of the same size. Throws td::Error naming both sizes
// when they differ in size (`actual_name`, `reference_name` say which is
// which), or when the tolerance is out of range.
ImageComparison compare_images(const Image& actual, const Image& reference, const ImageTolerance& tolerance,
                               const std::string& actual_name = "the actual image",
                               const std::string& reference_name = "the reference");

// `actual` dimmed to a third, with the pixels that differ from `reference`
// beyond the channel tolerance in pure red. Same size rule as compare_images.
Image difference_image(const Image& actual, const Image& reference, int channel_tolerance);

}  // namespace td
