#include "test_driver/polling_condition.h"

#include <gtest/gtest.h>

#include "test_driver/errors.h"

TEST(PollingCondition, ChecksOnlyWhenOverdue) {
  int calls = 0;
  td::PollingCondition c([&] { return ++calls > 0; }, 60, "always");
  EXPECT_TRUE(c.overdue());
  EXPECT_TRUE(c.check());
  EXPECT_TRUE(c.check());
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(c.overdue());
}

TEST(PollingCondition, FailureRaisesWithDescription) {
  td::PollingCondition c([] { return false; }, 0, "the web server runs");
  try {
    c.maybe_raise();
    FAIL();
  } catch (const td::PollingConditionFailed& e) {
    EXPECT_STREQ(e.what(), "Polling condition failed: the web server runs");
  }
}

TEST(PollingCondition, ErrorsCountAsFailureAndNoReentry) {
  td::PollingCondition* self = nullptr;
  bool inner = false;
  td::PollingCondition c([&]() -> bool {
    inner = self->check();  // re-entered: must not run again
    throw td::Error("boom");
  }, 0, "x");
  self = &c;
  EXPECT_FALSE(c.check());
  EXPECT_TRUE(inner);
  EXPECT_EQ(c.nested_message(), "Checking polling condition 'x'");
}
