#include "test_driver/retry.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>

#include "test_driver/errors.h"
#include "test_driver/interrupt.h"

namespace td {

double retry_interval(double elapsed_seconds, double last_call_seconds) {
  return std::min(1.0, std::max({0.02, elapsed_seconds / 16, last_call_seconds}));
}

void retry(const std::function<bool(bool)>& fn, Duration timeout) { retry_until(fn, Deadline::after(timeout), timeout); }

void retry_until(const std::function<bool(bool)>& fn, Deadline deadline, Duration timeout) {
  using Seconds = std::chrono::duration<double>;
  auto start = Clock::now();
  Seconds last_call{0};
  for (;;) {
    // The last call is the one that would end at or past the deadline if it
    // took as long as the one before; so no call starts after the deadline.
    bool last_try = Seconds(deadline.time_point() - Clock::now()) <= last_call;
    auto call_start = Clock::now();
    if (fn(last_try)) return;
    auto now = Clock::now();
    last_call = now - call_start;
    if (last_try) break;
    double interval = retry_interval(Seconds(now - start).count(), last_call.count());
    // Leave room for one more call before the deadline.
    double room = (Seconds(deadline.time_point() - now) - last_call).count();
    interrupt::sleep_for(Seconds(std::max(0.0, std::min(interval, room))));
  }
  throw_timed_out(start, timeout);
}

void throw_timed_out(Clock::time_point start, Duration timeout, const std::string& detail) {
  // Upstream's message: the time taken, and the timeout given.
  using Seconds = std::chrono::duration<double>;
  throw RequestedAssertionFailed(fmt::format("action timed out after {:.2f} seconds (timeout={}){}{}",
                                             Seconds(Clock::now() - start).count(), timeout.to_string(),
                                             detail.empty() ? "" : ": ", detail));
}

}  // namespace td
