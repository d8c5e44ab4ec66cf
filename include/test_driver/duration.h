// A length of time as a test script gives it: a non-negative number of
// seconds (a wait's timeout, a pause). Also the one default timeout of every
// wait, and how a number of seconds is printed in messages.
#pragma once

#include <chrono>
#include <compare>
#include <string>

namespace td {

using Clock = std::chrono::steady_clock;

// Formats seconds as Python would print the number the user gave: 60 -> "60".
std::string format_seconds(double seconds);

class Duration {
 public:
  constexpr Duration() = default;
  // Implicit from seconds, as scripts write them. Throws td::Error for a
  // negative or NaN number.
  constexpr Duration(double seconds) : seconds_(seconds) {  // NOLINT(google-explicit-constructor)
    if (!(seconds >= 0)) reject(seconds);
  }
  template <class Rep, class Period>
  constexpr Duration(std::chrono::duration<Rep, Period> d)  // NOLINT(google-explicit-constructor)
      : Duration(std::chrono::duration<double>(d).count()) {}

  constexpr double seconds() const { return seconds_; }
  // As the steady clock counts; a duration too long for it saturates.
  Clock::duration clock_duration() const;
  // "60", "0.5": as the user wrote it.
  std::string to_string() const { return format_seconds(seconds_); }

  friend constexpr auto operator<=>(const Duration&, const Duration&) = default;
  friend constexpr Duration operator+(Duration a, Duration b) { return Duration(a.seconds_ + b.seconds_); }

 private:
  [[noreturn]] static void reject(double seconds);
  double seconds_ = 0;
};

// What every wait waits when the script gives no timeout (the reference's).
inline constexpr Duration kDefaultTimeout{900.0};

}  // namespace td
