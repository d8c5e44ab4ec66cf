#include "test_driver/guest_poll.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace td {

std::string guest_poll_command(std::string_view condition, Duration within) {
  // EPOCHREALTIME (bash 5) in microseconds, the decimal point dropped. The
  // pause `p` starts at 10 ms; a condition may raise it (see the Unix socket
  // wait). `read` returning 0 or 1 is a line or the end of the input: the
  // driver stopped waiting; more than 128 is the pause's timeout.
  auto micros = static_cast<long long>(std::llround(std::max(within.seconds(), 0.0) * 1e6));
  return fmt::format(
      "p=0.01; e=$(( ${{EPOCHREALTIME/[.,]/}} + {micros} )); "
      "until {condition}; do "
      "(( ${{EPOCHREALTIME/[.,]/}} < e )) || exit {timed_out}; "
      "r=0; read -r -t $p _ || r=$?; (( r > 128 )) || exit {abandoned}; "
      "done",
      fmt::arg("micros", micros), fmt::arg("condition", condition), fmt::arg("timed_out", kGuestPollTimedOut),
      fmt::arg("abandoned", kGuestPollAbandoned));
}

}  // namespace td
