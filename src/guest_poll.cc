#include "test_driver/guest_poll.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace td {
namespace {

// A loop's time in the unit of its clock, ${EPOCHREALTIME} without the point.
long long guest_microseconds(Duration within) {
  return static_cast<long long>(std::llround(std::max(within.seconds(), 0.0) * 1e6));
}

}  // namespace

std::string guest_poll_command(std::string_view condition, Duration within) {
  // EPOCHREALTIME (bash 5) in microseconds, the decimal point dropped. The
  // pause `p` starts at 10 ms; a condition may raise it (see the Unix socket
  // wait). `read` returning 0 or 1 is a line or the end of the input: the
  // driver stopped waiting; more than 128 is the pause's timeout.
  auto micros = guest_microseconds(within);
  return fmt::format(
      "p=0.01; e=$(( ${{EPOCHREALTIME/[.,]/}} + {micros} )); "
      "until {condition}; do "
      "(( ${{EPOCHREALTIME/[.,]/}} < e )) || exit {timed_out}; "
      "r=0; read -r -t $p _ || r=$?; (( r > 128 )) || exit {abandoned}; "
      "done",
      fmt::arg("micros", micros), fmt::arg("condition", condition), fmt::arg("timed_out", kGuestPollTimedOut),
      fmt::arg("abandoned", kGuestPollAbandoned));
}

std::string guest_unit_wait_command(std::string_view quoted_unit, Duration within) {
  auto micros = guest_microseconds(within);
  // c: the state by systemctl into r (0 active, 3 failed, 4 inactive with
  // no jobs, 9 neither; 5 when systemctl fails). q: stop the monitor, exit.
  // The unit's D-Bus path escapes every byte but [A-Za-z0-9] (and a leading
  // digit) as _xx. `read -t 0` tells whether the abandon line waits on the
  // shell's input without reading it. busctl's stdout to a pipe is block
  // buffered: its lines came 0.5 s late without stdbuf -oL.
  return fmt::format(
      "u={unit}; e=$(( ${{EPOCHREALTIME/[.,]/}} + {micros} )); mp=; "
      "q() {{ [[ -z $mp ]] || kill $mp 2>/dev/null || :; exit $1; }}; "
      "c() {{ local s j; s=$(systemctl --no-pager show --property=ActiveState --value -- \"$u\") || q {unusable}; "
      "case $s in active) r=0;; failed) r={failed};; inactive) r=9; j=$(systemctl --no-pager list-jobs --full 2>&1) || :; "
      "[[ $j == *'No jobs'* && $(systemctl --no-pager show --property=ActiveState --value -- \"$u\") == inactive ]] && r={inactive} || :;; "
      "*) r=9;; esac; }}; "
      "id=$(systemctl --no-pager show --property=Id --value -- \"$u\") && [[ -n $id ]] || q {unusable}; "
      "p=/org/freedesktop/systemd1/unit/; LC_ALL=C; "
      "for (( i=0; i<${{#id}}; i++ )); do ch=${{id:i:1}}; "
      "if [[ $ch == [A-Za-z0-9] ]] && (( i > 0 )) || [[ $ch == [A-Za-z] ]]; then p+=$ch; else printf -v h %02x \"'$ch\"; p+=_$h; fi; done; "
      "sb=; ! command -v stdbuf >/dev/null || sb='stdbuf -oL'; "
      "exec {{m}}< <(exec $sb busctl monitor --system --json=short --match "
      "\"type='signal',path='$p',interface='org.freedesktop.DBus.Properties',member='PropertiesChanged'\" 2>/dev/null); mp=$!; "
      "c; (( r == 9 )) || q $r; "
      "b=500000; n=$(( ${{EPOCHREALTIME/[.,]/}} + b )); "
      "while :; do t=${{EPOCHREALTIME/[.,]/}}; (( t < e )) || q {timed_out}; "
      "if read -r -t 0 _; then q {abandoned}; fi; "
      "l=; rr=0; read -r -t 0.2 -u $m l || rr=$?; "
      "if (( rr == 1 )) && [[ -z $l ]]; then q {unusable}; fi; "
      "if (( rr > 128 )); then (( t < n )) && continue; c; (( r == 9 )) || q $r; "
      "b=$(( b * 2 > 10000000 ? 10000000 : b * 2 )); n=$(( t + b )); continue; fi; "
      "case $l in *'\"ActiveState\":{{\"type\":\"s\",\"data\":\"active\"}}'*) q 0;; "
      "*'\"ActiveState\":{{\"type\":\"s\",\"data\":\"failed\"}}'*) q {failed};; "
      "*'\"ActiveState\":{{\"type\":\"s\",\"data\":\"inactive\"}}'*) c; (( r == 9 )) || q $r;; esac; "
      "done",
      fmt::arg("unit", quoted_unit), fmt::arg("micros", micros), fmt::arg("timed_out", kGuestPollTimedOut),
      fmt::arg("abandoned", kGuestPollAbandoned), fmt::arg("failed", kUnitWaitFailed),
      fmt::arg("inactive", kUnitWaitInactive), fmt::arg("unusable", kUnitWaitUnusable));
}

}  // namespace td
