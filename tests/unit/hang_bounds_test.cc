#include "test_driver/hang_bounds.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <optional>
#include <string>

#include "test_driver/errors.h"

namespace {

// Sets an environment variable for one test and restores it after.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = getenv(name)) old_ = old;
    if (value) setenv(name, value, 1);
    else unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_) setenv(name_, old_->c_str(), 1);
    else unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(HangBounds, DefaultsAreTheDocumentedOnes) {
  ScopedEnv a("TEST_DRIVER_COMMAND_MARGIN", nullptr), b("TEST_DRIVER_REPLY_TIMEOUT", nullptr),
      c("TEST_DRIVER_STILL_WAITING_EVERY", nullptr), d("TEST_DRIVER_STALE_GRACE", nullptr);
  EXPECT_EQ(td::hang_bounds::command_margin().seconds(), 60);
  EXPECT_EQ(td::hang_bounds::reply_timeout().seconds(), 300);
  EXPECT_EQ(td::hang_bounds::still_waiting_every().seconds(), 30);
  EXPECT_EQ(td::hang_bounds::stale_grace().seconds(), 60);
}

TEST(HangBounds, EachIsOverriddenByItsVariableAtEachUse) {
  ScopedEnv a("TEST_DRIVER_REPLY_TIMEOUT", "2.5");
  EXPECT_EQ(td::hang_bounds::reply_timeout().seconds(), 2.5);
  setenv("TEST_DRIVER_REPLY_TIMEOUT", "7", 1);
  EXPECT_EQ(td::hang_bounds::reply_timeout().seconds(), 7);
  ScopedEnv b("TEST_DRIVER_COMMAND_MARGIN", "0");
  EXPECT_EQ(td::hang_bounds::command_margin().seconds(), 0);
}

TEST(HangBounds, ABadValueIsAnErrorNamingTheVariable) {
  ScopedEnv a("TEST_DRIVER_COMMAND_MARGIN", "soon");
  EXPECT_THROW(
      {
        try {
          td::hang_bounds::command_margin();
        } catch (const td::Error& e) {
          EXPECT_STREQ(e.what(), "TEST_DRIVER_COMMAND_MARGIN=soon: expected a number of seconds");
          throw;
        }
      },
      td::Error);
  ScopedEnv b("TEST_DRIVER_STALE_GRACE", "-1");
  EXPECT_THROW(td::hang_bounds::stale_grace(), td::Error);
  // A still-waiting note every 0 s would spin.
  ScopedEnv c("TEST_DRIVER_STILL_WAITING_EVERY", "0");
  EXPECT_THROW(td::hang_bounds::still_waiting_every(), td::Error);
}

}  // namespace
