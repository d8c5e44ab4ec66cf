#include "test_driver/deadline.h"

#include <algorithm>

namespace td {

namespace {
constexpr Duration kCentury{100.0 * 365 * 24 * 3600};
}

Deadline Deadline::after(Duration timeout) {
  auto now = Clock::now();
  auto span = timeout.clock_duration();
  if (span >= Clock::time_point::max() - now) return never();
  return Deadline(now + span);
}

Duration Deadline::remaining() const {
  if (is_never()) return kCentury;
  auto left = when_ - Clock::now();
  return left <= Clock::duration::zero() ? Duration() : Duration(left);
}

Deadline Deadline::extended_by(Duration margin) const {
  if (is_never()) return *this;
  auto span = margin.clock_duration();
  if (span >= Clock::time_point::max() - when_) return never();
  return Deadline(when_ + span);
}

}  // namespace td
