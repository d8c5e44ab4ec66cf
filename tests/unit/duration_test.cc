#include "test_driver/duration.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <type_traits>

#include "test_driver/errors.h"

using namespace std::chrono_literals;

namespace {
constexpr double kCenturySeconds = 100.0 * 365 * 24 * 3600;

double seconds_of(td::Duration d) { return d.seconds(); }
}  // namespace

TEST(Duration, IsANumberOfSeconds) {
  EXPECT_EQ(td::Duration().seconds(), 0.0);
  EXPECT_EQ(td::Duration(2.5).seconds(), 2.5);
  EXPECT_EQ(td::kDefaultTimeout.seconds(), 900.0);
  static_assert(td::Duration(1.5).seconds() == 1.5, "constexpr");
  static_assert(td::kDefaultTimeout.seconds() == 900.0);
}

TEST(Duration, ConvertsImplicitlyFromSecondsAndChronoDurations) {
  static_assert(std::is_convertible_v<double, td::Duration>);
  static_assert(std::is_convertible_v<int, td::Duration>);
  static_assert(std::is_convertible_v<std::chrono::milliseconds, td::Duration>);
  EXPECT_EQ(seconds_of(0.25), 0.25);
  EXPECT_EQ(seconds_of(3), 3.0);
  EXPECT_EQ(seconds_of(250ms), 0.25);
  EXPECT_EQ(seconds_of(2min), 120.0);
  EXPECT_EQ(seconds_of(std::chrono::duration<double>(1.75)), 1.75);
  EXPECT_EQ(seconds_of(1500us), 0.0015);
}

TEST(Duration, RejectsNegativeNumbers) {
  try {
    (void)td::Duration(-1.0);
    FAIL() << "no exception";
  } catch (const td::Error& e) {
    EXPECT_STREQ(e.what(), "a duration must be a non-negative number of seconds, got -1");
  }
  try {
    (void)td::Duration(-0.5);
    FAIL() << "no exception";
  } catch (const td::Error& e) {
    EXPECT_STREQ(e.what(), "a duration must be a non-negative number of seconds, got -0.5");
  }
  EXPECT_THROW((void)td::Duration(-1e-9), td::Error);
  EXPECT_THROW((void)td::Duration(-std::numeric_limits<double>::infinity()), td::Error);
  EXPECT_THROW((void)td::Duration(-1ms), td::Error);
  EXPECT_NO_THROW((void)td::Duration(0.0));
  EXPECT_NO_THROW((void)td::Duration(-0.0));  // it compares equal to 0
}

TEST(Duration, RejectsNaN) {
  try {
    (void)td::Duration(std::nan(""));
    FAIL() << "no exception";
  } catch (const td::Error& e) {
    EXPECT_STREQ(e.what(), "a duration must be a non-negative number of seconds, got nan");
  }
  EXPECT_THROW((void)td::Duration(std::numeric_limits<double>::quiet_NaN()), td::Error);
  EXPECT_THROW((void)td::Duration(std::chrono::duration<double>(std::nan(""))), td::Error);
}

TEST(Duration, PrintsAsTheUserWroteIt) {
  EXPECT_EQ(td::Duration(900).to_string(), "900");
  EXPECT_EQ(td::Duration(0.5).to_string(), "0.5");
  EXPECT_EQ(td::Duration(0).to_string(), "0");
  EXPECT_EQ(td::Duration(1.25).to_string(), "1.25");
  EXPECT_EQ(td::Duration(0.1).to_string(), "0.1");
  EXPECT_EQ(td::Duration(300.0).to_string(), "300");
  EXPECT_EQ(td::Duration(1500ms).to_string(), "1.5");
  EXPECT_EQ(td::kDefaultTimeout.to_string(), "900");
}

TEST(Duration, ClockDurationIsTheSameSpan) {
  EXPECT_EQ(td::Duration(1.5).clock_duration(), 1500ms);
  EXPECT_EQ(td::Duration(0).clock_duration(), td::Clock::duration::zero());
  EXPECT_EQ(td::Duration(250us).clock_duration(), 250us);
  EXPECT_EQ(td::Duration(900).clock_duration(), 900s);
}

TEST(Duration, ClockDurationSaturatesForHugeValues) {
  const auto century = std::chrono::duration_cast<td::Clock::duration>(std::chrono::duration<double>(kCenturySeconds));
  EXPECT_EQ(td::Duration(kCenturySeconds).clock_duration(), century);
  // Beyond a century the tick count would overflow (UB): it stops there.
  EXPECT_EQ(td::Duration(1e300).clock_duration(), century);
  EXPECT_EQ(td::Duration(std::numeric_limits<double>::max()).clock_duration(), century);
  EXPECT_EQ(td::Duration(std::numeric_limits<double>::infinity()).clock_duration(), century);
  EXPECT_EQ(td::Duration(std::chrono::hours::max()).clock_duration(), century);
  EXPECT_GT(century, td::Clock::duration::zero());
  EXPECT_LT(td::Duration(kCenturySeconds / 2).clock_duration(), century);
}

TEST(Duration, ComparesAndAdds) {
  EXPECT_LT(td::Duration(1), td::Duration(2));
  EXPECT_EQ(td::Duration(0.5), td::Duration(500ms));
  EXPECT_GT(td::kDefaultTimeout, td::Duration(899.5));
  EXPECT_EQ(td::Duration(1) + td::Duration(0.5), td::Duration(1.5));
  EXPECT_EQ(std::max(td::Duration(0.01), td::Duration(0.02)), td::Duration(0.02));
}
