#include "test_driver/deadline.h"

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <thread>

using namespace std::chrono_literals;
using td::Clock;
using td::Deadline;
using td::Duration;

namespace {
constexpr double kCenturySeconds = 100.0 * 365 * 24 * 3600;
}

TEST(Deadline, NeverNeverPasses) {
  Deadline never = Deadline::never();
  EXPECT_TRUE(never.is_never());
  EXPECT_FALSE(never.passed());
  EXPECT_EQ(never.time_point(), Clock::time_point::max());
  // What is left of it: a century.
  EXPECT_EQ(never.remaining().seconds(), kCenturySeconds);
  EXPECT_EQ(never, Deadline::never());
}

TEST(Deadline, AfterNoTimeoutIsNever) {
  EXPECT_TRUE(Deadline::after_or_never(std::optional<Duration>()).is_never());
  EXPECT_TRUE(Deadline::after_or_never(std::optional<Duration>(std::nullopt)).is_never());
  EXPECT_FALSE(Deadline::after_or_never(std::optional<Duration>(Duration(10))).is_never());
}

TEST(Deadline, AfterATimeoutIsThatFarFromNow) {
  auto before = Clock::now();
  Deadline d = Deadline::after(Duration(10));
  auto after = Clock::now();
  EXPECT_FALSE(d.is_never());
  EXPECT_FALSE(d.passed());
  EXPECT_GE(d.time_point(), before + 10s);
  EXPECT_LE(d.time_point(), after + 10s);
  EXPECT_GT(d.remaining(), Duration(9));
  EXPECT_LE(d.remaining(), Duration(10));

  auto optional_before = Clock::now();
  Deadline o = Deadline::after_or_never(std::optional<Duration>(Duration(2.5)));
  EXPECT_GE(o.time_point(), optional_before + 2500ms);
  EXPECT_LE(o.time_point(), Clock::now() + 2500ms);
}

TEST(Deadline, AfterAHugeTimeoutIsNotAnOverflow) {
  // The span saturates at a century; the deadline is that far away.
  Deadline d = Deadline::after(Duration(1e300));
  EXPECT_FALSE(d.passed());
  EXPECT_GT(d.time_point(), Clock::now() + std::chrono::hours(24 * 365 * 99));
  EXPECT_GT(d.remaining(), Duration(kCenturySeconds * 0.99));
  EXPECT_FALSE(Deadline::after(Duration(std::numeric_limits<double>::infinity())).passed());
}

TEST(Deadline, AfterZeroHasPassed) {
  Deadline d = Deadline::after(Duration(0));
  EXPECT_TRUE(d.passed());
  EXPECT_EQ(d.remaining(), Duration(0));
}

TEST(Deadline, PassesOnceItsTimeComes) {
  Deadline d = Deadline::after(Duration(0.2));
  EXPECT_FALSE(d.passed());
  EXPECT_GT(d.remaining(), Duration(0));
  std::this_thread::sleep_until(d.time_point() + 1ms);
  EXPECT_TRUE(d.passed());
  // Zero once passed, never negative (a Duration would throw).
  EXPECT_EQ(d.remaining(), Duration(0));
}

TEST(Deadline, AtIsThatPoint) {
  auto t = Clock::now() + 5s;
  EXPECT_EQ(Deadline::at(t).time_point(), t);
  EXPECT_EQ(Deadline::at(t), Deadline::at(t));
  EXPECT_NE(Deadline::at(t), Deadline::at(t + 1ns));
  EXPECT_FALSE(Deadline::at(t).passed());
  EXPECT_TRUE(Deadline::at(Clock::now() - 1s).passed());
  EXPECT_EQ(Deadline::at(Clock::now() - 1s).remaining(), Duration(0));
  EXPECT_TRUE(Deadline::at(Clock::time_point::max()).is_never());
}

TEST(Deadline, SoonerIsTheEarlier) {
  auto t = Clock::now() + 10s;
  Deadline early = Deadline::at(t), late = Deadline::at(t + 1s);
  EXPECT_EQ(early.sooner(late), early);
  EXPECT_EQ(late.sooner(early), early);
  EXPECT_EQ(early.sooner(early), early);
  EXPECT_EQ(Deadline::never().sooner(late), late);
  EXPECT_EQ(late.sooner(Deadline::never()), late);
  EXPECT_TRUE(Deadline::never().sooner(Deadline::never()).is_never());
}

TEST(Deadline, ExtendedByMovesItLater) {
  auto t = Clock::now() + 10s;
  EXPECT_EQ(Deadline::at(t).extended_by(Duration(2.5)), Deadline::at(t + 2500ms));
  EXPECT_EQ(Deadline::at(t).extended_by(Duration(0)), Deadline::at(t));
  // A passed deadline extended is that much after its time, not after now.
  auto past = Clock::now() - 10s;
  EXPECT_EQ(Deadline::at(past).extended_by(Duration(1)), Deadline::at(past + 1s));
  EXPECT_TRUE(Deadline::at(past).extended_by(Duration(1)).passed());
}

TEST(Deadline, NeverExtendedStaysNever) {
  EXPECT_TRUE(Deadline::never().extended_by(Duration(60)).is_never());
  EXPECT_TRUE(Deadline::never().extended_by(Duration(1e300)).is_never());
}

TEST(Deadline, ExtendedPastTheClocksEndIsNever) {
  // Near the end of the clock, an extension saturates instead of wrapping.
  Deadline late = Deadline::at(Clock::time_point::max() - 1s);
  EXPECT_FALSE(late.is_never());
  EXPECT_TRUE(late.extended_by(Duration(2)).is_never());
  EXPECT_FALSE(late.extended_by(Duration(2)).passed());
  auto t = Clock::now();
  Deadline far = Deadline::at(t).extended_by(Duration(1e300));
  EXPECT_GT(far.time_point(), t);
  EXPECT_FALSE(far.passed());
}
