#include "test_driver/duration.h"

#include <fmt/format.h>

#include <cmath>

#include "test_driver/errors.h"

namespace td {

std::string format_seconds(double seconds) {
  if (std::floor(seconds) == seconds && std::abs(seconds) < 1e15) return fmt::format("{}", static_cast<long long>(seconds));
  return fmt::format("{}", seconds);
}

void Duration::reject(double seconds) {
  throw Error(fmt::format("a duration must be a non-negative number of seconds, got {}", format_seconds(seconds)));
}

Clock::duration Duration::clock_duration() const {
  // A century is "forever" for a test; beyond it the tick count overflows.
  constexpr double kLongest = 100.0 * 365 * 24 * 3600;
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(std::min(seconds_, kLongest)));
}

}  // namespace td
