#include "test_driver/retry.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

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
    // Upstream's message: the time taken (about the timeout, which bounds
    // the whole loop), and the timeout.
    std::string what = e.what();
    EXPECT_TRUE(what.starts_with("action timed out after 0.")) << what;
    EXPECT_TRUE(what.ends_with(" seconds (timeout=0.3)")) << what;
  }
  EXPECT_TRUE(saw_last);
}

TEST(Retry, IntervalStartsFastAndBacksOffToOneSecond) {
  EXPECT_DOUBLE_EQ(td::retry_interval(0, 0.001), 0.02);
  EXPECT_DOUBLE_EQ(td::retry_interval(1.6, 0.001), 0.1);
  EXPECT_DOUBLE_EQ(td::retry_interval(60, 0.001), 1.0);
  EXPECT_DOUBLE_EQ(td::retry_interval(60, 5.0), 1.0);
}

TEST(Retry, IntervalIsNeverShorterThanTheLastCall) {
  // A probe that keeps the guest busy for 300 ms is not repeated at once.
  EXPECT_DOUBLE_EQ(td::retry_interval(0.5, 0.3), 0.3);
}

TEST(Retry, PollsAFewTimesPerSecondAtMost) {
  int calls = 0;
  try {
    td::retry([&](bool) {
      ++calls;
      return false;
    }, 2);
  } catch (const td::RequestedAssertionFailed&) {
  }
  // 20 ms at first, then a sixteenth of the time waited: ~45 calls in 2 s on
  // an idle machine (a fixed 20 ms would be 100). A loaded one makes fewer,
  // never more; 5 still catches waits an order of magnitude too long.
  EXPECT_GE(calls, 5);
  EXPECT_LT(calls, 70);
}

TEST(Retry, FormatsWholeSecondsAsIntegers) {
  EXPECT_EQ(td::format_seconds(900), "900");
  EXPECT_EQ(td::format_seconds(1.5), "1.5");
}
