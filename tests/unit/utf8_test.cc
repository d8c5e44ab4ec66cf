#include "test_driver/utf8.h"

#include <gtest/gtest.h>

TEST(Utf8, KeepsValidText) {
  EXPECT_EQ(td::to_valid_utf8("hello ünïcødé €𝄞"), "hello ünïcødé €𝄞");
}

TEST(Utf8, ReplacesInvalidBytesLikePython) {
  EXPECT_EQ(td::to_valid_utf8("a\xff" "b"), "a\xEF\xBF\xBD" "b");
  EXPECT_EQ(td::to_valid_utf8("\xC3"), "\xEF\xBF\xBD");                // truncated
  EXPECT_EQ(td::to_valid_utf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  EXPECT_EQ(td::to_valid_utf8(std::string("a\0b", 3)), std::string("a\0b", 3));
}

TEST(Utf8, ACutOffCharacterIsOneReplacementAsInPython) {
  // b"\xe2\x82".decode("utf-8", "replace") == "\ufffd", and so on.
  EXPECT_EQ(td::to_valid_utf8("\xE2\x82"), "\xEF\xBF\xBD");
  EXPECT_EQ(td::to_valid_utf8("\xE2\x82" "A"), "\xEF\xBF\xBD" "A");
  EXPECT_EQ(td::to_valid_utf8("\xF0\x9F\x98"), "\xEF\xBF\xBD");
  EXPECT_EQ(td::to_valid_utf8("\xF0\x9F\x98\xF0\x9F\x98\x80"), "\xEF\xBF\xBD\xF0\x9F\x98\x80");
  EXPECT_EQ(td::to_valid_utf8("\xE0\x80\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // overlong
}

TEST(Utf8, StripsWhatXmlForbids) {
  EXPECT_EQ(td::strip_xml_forbidden(std::string("a\0b\x01\tc\nd\x1b[0m", 12)), "ab\tc\nd[0m");
  EXPECT_EQ(td::strip_xml_forbidden("\xEF\xBF\xBE"), "");  // U+FFFE
}

TEST(Utf8, StripsControlCharacters) {
  EXPECT_EQ(td::strip_control("\x1b[1mbold\x1b[0m\r\t"), "[1mbold[0m");
  EXPECT_EQ(td::strip_control("\xC2\x85x"), "x");  // C1 control NEL
}
