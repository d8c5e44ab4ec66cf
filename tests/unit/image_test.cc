#include "test_driver/image.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "test_driver/errors.h"

namespace td {
namespace {

// The message of the td::Error that fn throws ("" if none).
template <typename Fn>
std::string error_of(Fn fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

::testing::AssertionResult Contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << text << "\" does not contain \"" << part << "\"";
}

// A string of the literal's bytes, NULs included.
template <size_t N>
std::string bytes(const char (&literal)[N]) {
  return std::string(literal, N - 1);
}

// A width x height image whose pixel (x, y) is (x, y, x + y) mod 256.
Image gradient(size_t width, size_t height) {
  Image image(width, height);
  for (size_t y = 0; y < height; ++y)
    for (size_t x = 0; x < width; ++x) {
      uint8_t* p = image.pixel(x, y);
      p[0] = uint8_t(x);
      p[1] = uint8_t(y);
      p[2] = uint8_t(x + y);
    }
  return image;
}

TEST(ImageTest, PpmRoundTrips) {
  Image image = gradient(7, 3);
  std::string ppm = image.to_ppm();
  EXPECT_EQ(ppm.substr(0, 11), "P6\n7 3\n255\n");
  EXPECT_EQ(ppm.size(), 11u + 7 * 3 * 3);
  EXPECT_EQ(Image::parse_netpbm(ppm, "x"), image);
}

TEST(ImageTest, ParsesCommentsGreyBitmapsAndOtherMaxvals) {
  // P6 with a comment in the header, as some tools write.
  Image colour = Image::parse_netpbm(bytes("P6\n# made by hand\n2 1 255\n\x01\x02\x03\xff\x00\x80"), "c");
  ASSERT_EQ(colour.size_string(), "2x1");
  EXPECT_EQ(colour.pixel(0, 0)[2], 3);
  EXPECT_EQ(colour.pixel(1, 0)[0], 255);
  EXPECT_EQ(colour.pixel(1, 0)[2], 0x80);
  // P5: grey on all three channels; maxval 15 scaled to 255.
  Image grey = Image::parse_netpbm(bytes("P5 2 1 15\n\x0f\x05"), "g");
  EXPECT_EQ(grey.pixel(0, 0)[0], 255);
  EXPECT_EQ(grey.pixel(1, 0)[1], 85);
  // P5 with 16-bit samples (big-endian).
  Image deep = Image::parse_netpbm(bytes("P5 1 1 65535\n\xff\xff"), "d");
  EXPECT_EQ(deep.pixel(0, 0)[0], 255);
  // P4: 1 is black, rows padded to whole bytes.
  Image bits = Image::parse_netpbm(bytes("P4 9 2\n\x80\x00\x00\x80"), "b");
  EXPECT_EQ(bits.pixel(0, 0)[0], 0);
  EXPECT_EQ(bits.pixel(1, 0)[0], 255);
  EXPECT_EQ(bits.pixel(8, 0)[0], 255);
  EXPECT_EQ(bits.pixel(8, 1)[0], 0);
}

TEST(ImageTest, MalformedNetpbmIsAClearError) {
  EXPECT_TRUE(Contains(error_of([] { Image::parse_netpbm("\x89PNG\r\n\x1a\n", "shot.ppm"); }), "shot.ppm is not a binary netpbm image (P4, P5 or P6): it starts with \"?PNG"));
  EXPECT_TRUE(Contains(error_of([] { Image::parse_netpbm("P3\n1 1\n255\n0 0 0\n", "plain"); }), "plain is not a binary netpbm image"));
  EXPECT_TRUE(Contains(error_of([] { Image::parse_netpbm("P6\n640", "short"); }), "short is not a valid netpbm image: its header lacks the height (the file ends first)"));
  EXPECT_TRUE(Contains(error_of([] { Image::parse_netpbm("P6\n2 x\n255\n", "letters"); }), "its header lacks the height"));
  EXPECT_TRUE(Contains(error_of([] { Image::parse_netpbm("P6 0 4 255\n", "empty"); }), "its size 0x4 is out of range"));
  EXPECT_TRUE(Contains(error_of([] { Image::parse_netpbm("P6 99999999999 4 255\n", "huge"); }), "too large"));
  EXPECT_TRUE(Contains(error_of([] { Image::parse_netpbm("P6 1 1 0\n\0\0\0", "m"); }), "its maxval 0"));
  EXPECT_TRUE(Contains(error_of([] { Image::parse_netpbm("P6 4 2 255\nabc", "cut.ppm"); }), "cut.ppm is truncated: its 4x2 pixels need 24 bytes of data, it has 3"));
  EXPECT_TRUE(Contains(error_of([] { Image::parse_netpbm("P6 1 1 255", "nodata"); }), "no whitespace between header and data"));
}

TEST(ImageTest, CropTakesTheRegion) {
  Image image = gradient(10, 8);
  Image part = image.crop({3, 2, 4, 5});
  ASSERT_EQ(part.size_string(), "4x5");
  EXPECT_EQ(part.pixel(0, 0)[0], 3);
  EXPECT_EQ(part.pixel(0, 0)[1], 2);
  EXPECT_EQ(part.pixel(3, 4)[0], 6);
  EXPECT_EQ(part.pixel(3, 4)[1], 6);
  EXPECT_EQ(image.crop({0, 0, 10, 8}), image);
}

TEST(ImageTest, ARegionOutsideTheImageNamesBothSizes) {
  Image image = gradient(10, 8);
  EXPECT_EQ(error_of([&] { image.crop({8, 2, 4, 5}, "the screen"); }),
            "the region (8, 2, 4, 5) (4x5 at x=8, y=2) does not lie inside the screen (10x8)");
  EXPECT_TRUE(Contains(error_of([&] { image.crop({-1, 0, 2, 2}); }), "does not lie inside the image (10x8)"));
  EXPECT_TRUE(Contains(error_of([&] { image.crop({0, 7, 1, 2}); }), "(1x2 at x=0, y=7)"));
  EXPECT_TRUE(Contains(error_of([&] { image.crop({0, 0, 0, 2}); }), ": it is empty"));
}

TEST(ImageTest, IdenticalImagesMatch) {
  ImageComparison result = compare_images(gradient(20, 10), gradient(20, 10), {0, 0.0});
  EXPECT_TRUE(result.matches);
  EXPECT_EQ(result.differing, 0u);
  EXPECT_EQ(result.total, 200u);
}

TEST(ImageTest, ChannelToleranceForgivesSmallColourChanges) {
  Image reference = gradient(20, 10);
  Image actual = reference;
  actual.pixel(5, 5)[1] = uint8_t(actual.pixel(5, 5)[1] + 16);  // within 16
  actual.pixel(15, 5)[2] = uint8_t(actual.pixel(15, 5)[2] - 17);  // beyond (20 - 17)
  ImageComparison loose = compare_images(actual, reference, {16, 0.0});
  EXPECT_EQ(loose.differing, 1u);
  EXPECT_FALSE(loose.matches);
  EXPECT_EQ(compare_images(actual, reference, {17, 0.0}).differing, 0u);
  EXPECT_EQ(compare_images(actual, reference, {0, 0.0}).differing, 2u);
}

TEST(ImageTest, ThresholdIsTheFractionOfPixelsThatMayDiffer) {
  Image reference(100, 10);  // 1000 pixels, black
  Image actual = reference;
  for (size_t x = 0; x < 10; ++x) actual.pixel(x, 0)[0] = 255;  // 10 red pixels: 1%
  ImageComparison at_one_percent = compare_images(actual, reference, {16, 0.01});
  EXPECT_TRUE(at_one_percent.matches);
  EXPECT_EQ(at_one_percent.describe(), "10 of 1000 pixels (1.00%) differ");
  EXPECT_FALSE(compare_images(actual, reference, {16, 0.009}).matches);
  // The default lets one pixel in a thousand differ, not ten.
  EXPECT_FALSE(compare_images(actual, reference, ImageTolerance{}).matches);
  actual = reference;
  actual.pixel(50, 5)[2] = 200;
  EXPECT_TRUE(compare_images(actual, reference, ImageTolerance{}).matches);
}

TEST(ImageTest, SizeMismatchNamesBothSizes) {
  EXPECT_EQ(error_of([] { compare_images(gradient(4, 3), gradient(3, 4), {}, "the screen region", "ref.png"); }),
            "cannot compare the screen region (4x3) with ref.png (3x4): they differ in size");
  EXPECT_TRUE(Contains(error_of([] { difference_image(gradient(4, 3), gradient(4, 4), 16); }), "(4x3)"));
}

TEST(ImageTest, BadTolerancesAreErrors) {
  EXPECT_TRUE(Contains(error_of([] { compare_images(gradient(2, 2), gradient(2, 2), {-1, 0.1}); }), "channel tolerance must be between 0 and 255, not -1"));
  EXPECT_TRUE(Contains(error_of([] { compare_images(gradient(2, 2), gradient(2, 2), {16, 1.5}); }), "between 0 and 1, not 1.5"));
}

TEST(ImageTest, DifferenceImageIsRedOverTheDimmedActual) {
  Image reference = gradient(4, 2);
  Image actual = reference;
  actual.pixel(2, 1)[0] = uint8_t(actual.pixel(2, 1)[0] + 100);
  Image diff = difference_image(actual, reference, 16);
  ASSERT_EQ(diff.size_string(), "4x2");
  EXPECT_EQ(diff.pixel(2, 1)[0], 255);
  EXPECT_EQ(diff.pixel(2, 1)[1], 0);
  EXPECT_EQ(diff.pixel(2, 1)[2], 0);
  EXPECT_EQ(diff.pixel(3, 1)[0], 3 / 3);
  EXPECT_EQ(diff.pixel(3, 1)[2], 4 / 3);
}

class ImagePngTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "image-test-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
};

TEST_F(ImagePngTest, PngRoundTripsThroughNetpbm) {
  Image colour = gradient(33, 17);
  colour.write_png(dir_ / "colour.png", dir_);
  std::ifstream in(dir_ / "colour.png", std::ios::binary);
  char signature[8];
  ASSERT_TRUE(in.read(signature, 8));
  EXPECT_EQ(std::string(signature, 8), "\x89PNG\r\n\x1a\n");
  EXPECT_EQ(Image::read_png(dir_ / "colour.png"), colour);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "colour.png.ppm"));  // the scratch PPM is gone
  // pnmtopng writes an all-grey image as a grey PNG, which pngtopnm returns as P5.
  Image grey(5, 2);
  grey.pixel(1, 1)[0] = grey.pixel(1, 1)[1] = grey.pixel(1, 1)[2] = 128;
  grey.write_png(dir_ / "grey.png", dir_);
  EXPECT_EQ(Image::read_png(dir_ / "grey.png"), grey);
}

TEST_F(ImagePngTest, UnreadablePngsAreNamed) {
  EXPECT_TRUE(Contains(error_of([&] { Image::read_png(dir_ / "missing.png"); }), "cannot read the image " + (dir_ / "missing.png").string() + ": it does not exist"));
  std::ofstream(dir_ / "text.png") << "not a png\n";
  EXPECT_TRUE(Contains(error_of([&] { Image::read_png(dir_ / "text.png"); }), "cannot read the PNG " + (dir_ / "text.png").string() + ": pngtopnm failed (1)"));
  EXPECT_TRUE(Contains(error_of([&] { gradient(2, 2).write_png(dir_ / "no-dir" / "x.png", dir_); }), "cannot write " + (dir_ / "no-dir" / "x.png").string()));
}

}  // namespace
}  // namespace td
