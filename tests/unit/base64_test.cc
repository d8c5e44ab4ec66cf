#include "test_driver/base64.h"

#include <gtest/gtest.h>

TEST(Base64, DecodesWhatItEncodes) {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  for (size_t n = 0; n < 10; ++n) EXPECT_EQ(td::base64_decode(td::base64_encode(all.substr(0, n))), all.substr(0, n));
  EXPECT_EQ(td::base64_decode(td::base64_encode(all)), all);
}

TEST(Base64, KnownValuesAndWhitespace) {
  EXPECT_EQ(td::base64_decode("aGVsbG8K\n"), "hello\n");
  EXPECT_EQ(td::base64_decode(""), "");
  EXPECT_EQ(td::base64_encode("hello\n"), "aGVsbG8K");
}

TEST(Base64, RejectsGarbage) {
  EXPECT_FALSE(td::base64_decode("not base64!"));
  EXPECT_FALSE(td::base64_decode("abc"));
  EXPECT_FALSE(td::base64_decode("ab=c"));
}
