// A condition that must keep holding while a test runs ("the web server
// never crashes"). The driver checks it before each command and monitor
// command once `seconds_interval` has passed since the last check, and fails
// the test with "Polling condition failed: <description>" when it does not
// hold.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>

namespace td {

class PollingCondition {
 public:
  // `condition` returns false, or throws td::Error, when it does not hold.
  PollingCondition(std::function<bool()> condition, double seconds_interval, std::string description);

  // Runs the condition if it is overdue and not already running (a condition
  // that runs commands would otherwise check itself), or when `force`; true
  // when it holds or was not due.
  bool check(bool force = false);
  // check(), throwing PollingConditionFailed when it does not hold.
  void maybe_raise();

  std::string status_message(bool status) const;
  std::string nested_message() const;
  bool overdue() const;
  const std::string& description() const { return description_; }
  double seconds_interval() const { return seconds_interval_; }
  bool entered() const { return entered_; }

 private:
  using Clock = std::chrono::steady_clock;
  std::function<bool()> condition_;
  double seconds_interval_;
  std::string description_;
  std::optional<Clock::time_point> last_called_;
  bool entered_ = false;
};

}  // namespace td
