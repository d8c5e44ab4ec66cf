#include "test_driver/retry.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "test_driver/errors.h"
#include "test_driver/interrupt.h"

namespace td {

std::string format_seconds(double seconds) {
  if (std::floor(seconds) == seconds && std::abs(seconds) < 1e15) return fmt::format("{}", static_cast<long long>(seconds));
  return fmt::format("{}", seconds);
}

void retry(const std::function<bool(bool)>& fn, double timeout_seconds) {
  using Clock = std::chrono::steady_clock;
  auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_seconds));
  double interval = 0.05;
  while (Clock::now() < deadline) {
    if (fn(false)) return;
    std::chrono::duration<double> left = deadline - Clock::now();
    interrupt::sleep_for(std::chrono::duration<double>(std::max(0.0, std::min(interval, left.count()))));
    interval = std::min(1.0, interval * 1.5);
  }
  if (!fn(true)) throw RequestedAssertionFailed(fmt::format("action timed out after {} seconds", format_seconds(timeout_seconds)));
}

}  // namespace td
