// Hang bounds: their defaults and the environment variables that override them.
#include "test_driver/hang_bounds.h"

#include <fmt/format.h>

#include <cmath>
#include <cstdlib>
#include <string>

#include "test_driver/errors.h"

namespace td::hang_bounds {
namespace {

// Read at each use, so that a test (or a script) can set it at any time.
Duration from_env(const char* variable, Duration fallback, double smallest = 0) {
  const char* text = std::getenv(variable);
  if (!text || !*text) return fallback;
  char* end = nullptr;
  double seconds = std::strtod(text, &end);
  if (*end != '\0' || !std::isfinite(seconds) || seconds < smallest)
    throw Error(fmt::format("{}={}: expected a number of seconds{}", variable, text,
                            smallest > 0 ? fmt::format(" of at least {}", format_seconds(smallest)) : ""));
  return Duration(seconds);
}

}  // namespace

Duration command_margin() { return from_env("TEST_DRIVER_COMMAND_MARGIN", 60.0); }
Duration reply_timeout() { return from_env("TEST_DRIVER_REPLY_TIMEOUT", 300.0); }
Duration still_waiting_every() { return from_env("TEST_DRIVER_STILL_WAITING_EVERY", 30.0, 0.1); }
Duration stale_grace() { return from_env("TEST_DRIVER_STALE_GRACE", 60.0); }

}  // namespace td::hang_bounds
