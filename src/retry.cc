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

double retry_interval(double elapsed_seconds, double last_call_seconds) {
  return std::min(1.0, std::max({0.02, elapsed_seconds / 16, last_call_seconds}));
}

void retry(const std::function<bool(bool)>& fn, double timeout_seconds) {
  using Clock = std::chrono::steady_clock;
  using Seconds = std::chrono::duration<double>;
  auto start = Clock::now();
  auto deadline = start + std::chrono::duration_cast<Clock::duration>(Seconds(timeout_seconds));
  while (Clock::now() < deadline) {
    auto call_start = Clock::now();
    if (fn(false)) return;
    auto now = Clock::now();
    double interval = retry_interval(Seconds(now - start).count(), Seconds(now - call_start).count());
    interrupt::sleep_for(Seconds(std::max(0.0, std::min(interval, Seconds(deadline - now).count()))));
  }
  if (!fn(true)) throw RequestedAssertionFailed(fmt::format("action timed out after {} seconds", format_seconds(timeout_seconds)));
}

}  // namespace td
