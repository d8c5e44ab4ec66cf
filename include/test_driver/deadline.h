// When a wait gives up: a point on the steady clock, or never. A wait makes
// one from its timeout when it begins and hands that same value down to the
// socket read, so that its timeout bounds all of it.
#pragma once

#include <optional>

#include "test_driver/duration.h"

namespace td {

class Deadline {
 public:
  static Deadline never() { return Deadline(Clock::time_point::max()); }
  static Deadline at(Clock::time_point when) { return Deadline(when); }
  // `timeout` from now; never for nullopt (a wait without a timeout).
  static Deadline after(Duration timeout);
  static Deadline after_or_never(std::optional<Duration> timeout) { return timeout ? after(*timeout) : never(); }

  bool is_never() const { return when_ == Clock::time_point::max(); }
  bool passed() const { return !is_never() && Clock::now() >= when_; }
  Clock::time_point time_point() const { return when_; }
  // What is left of it (zero once passed); for never, a century.
  Duration remaining() const;
  // The earlier of the two.
  Deadline sooner(const Deadline& other) const { return when_ <= other.when_ ? *this : other; }
  // This deadline moved `margin` later (never stays never).
  Deadline extended_by(Duration margin) const;

  friend bool operator==(const Deadline&, const Deadline&) = default;

 private:
  explicit Deadline(Clock::time_point when) : when_(when) {}
  Clock::time_point when_;
};

}  // namespace td
