#include "test_driver/retry.h"

#include <gtest/gtest.h>

#include <chrono>

#include "test_driver/errors.h"

TEST(Retry, ReturnsAsSoonAsTrue) {
  int calls = 0;
  auto start = std::chrono::steady_clock::now();
  td::retry([&](bool last) {
    EXPECT_FALSE(last);
    return ++calls == 3;
  }, 10);
  EXPECT_EQ(calls, 3);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
}

TEST(Retry, LastTryIsFlaggedAndTimeoutRaises) {
  bool saw_last = false;
  try {
    td::retry([&](bool last) {
      saw_last = saw_last || last;
      return false;
    }, 0.3);
    FAIL() << "no exception";
  } catch (const td::RequestedAssertionFailed& e) {
    EXPECT_STREQ(e.what(), "action timed out after 0.3 seconds");
  }
  EXPECT_TRUE(saw_last);
}

TEST(Retry, FormatsWholeSecondsAsIntegers) {
  EXPECT_EQ(td::format_seconds(900), "900");
  EXPECT_EQ(td::format_seconds(1.5), "1.5");
}
