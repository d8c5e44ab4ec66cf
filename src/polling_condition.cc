#include "test_driver/polling_condition.h"

#include <fmt/format.h>

#include "test_driver/errors.h"
#include "test_driver/logger.h"

namespace td {

PollingCondition::PollingCondition(std::function<bool()> condition, double seconds_interval, std::string description)
    : condition_(std::move(condition)), seconds_interval_(seconds_interval), description_(std::move(description)) {}

bool PollingCondition::overdue() const {
  if (!last_called_) return true;
  return std::chrono::duration<double>(Clock::now() - *last_called_).count() > seconds_interval_;
}

std::string PollingCondition::status_message(bool status) const {
  return fmt::format("Polling condition {}: {}", status ? "succeeded" : "failed", description_);
}

std::string PollingCondition::nested_message() const {
  // As Python's repr() of the description string.
  std::string quoted = description_.find('\'') != std::string::npos && description_.find('"') == std::string::npos
                           ? "\"" + description_ + "\""
                           : "'" + description_ + "'";
  return "Checking polling condition " + quoted;
}

bool PollingCondition::check(bool force) {
  if ((entered_ || !overdue()) && !force) return true;
  entered_ = true;
  struct Exit {
    PollingCondition& c;
    ~Exit() {
      c.entered_ = false;
      c.last_called_ = Clock::now();
    }
  } on_exit{*this};
  Logger::Nest nest(rootlog(), nested_message());
  if (last_called_)
    rootlog().info(
        fmt::format("Time since last: {:.2f}s", std::chrono::duration<double>(Clock::now() - *last_called_).count()));
  else
    rootlog().info("(not called yet)");
  bool result;
  try {
    result = condition_();
  } catch (const Error&) {
    result = false;
  }
  rootlog().info(status_message(result));
  return result;
}

void PollingCondition::maybe_raise() {
  if (!check()) throw PollingConditionFailed(status_message(false));
}

}  // namespace td
