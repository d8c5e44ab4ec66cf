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
  // The order closes the race between the first check and the monitor: the
  // monitor starts first, and busctl prints "Monitoring bus message stream."
  // (stderr, into the same pipe) once BecomeMonitor has returned, i.e. once
  // the bus delivers to it; only then does c check the state. A busctl that
  // does not print the line (a newer one in JSON mode) gets 0.5 s, and then
  // timed checks (0.5 s, 1.5 s, 3.5 s, ... every 10 s at most) are its net;
  // with the line they are not needed, and each costs a systemctl run
  // (~0.3 s of the guest's CPU under TCG).
  //   pth ID: the unit's D-Bus path into p (every byte but [A-Za-z0-9], and
  //     a leading digit, escaped as _xx).
  //   mon: (re)start the monitor on p, filtered to the Unit interface's
  //     PropertiesChanged; busctl's stdout to a pipe is block buffered, and
  //     its lines came 0.5 s late without stdbuf -oL.
  //   c: Id and ActiveState in one systemctl run; the state into r (0
  //     active, 3 failed, 4 inactive with no jobs, 9 neither; 5 when
  //     systemctl fails).
  //   q: stop the monitor, exit.
  // The path is first guessed from the name (systemctl adds .service to a
  // name without a unit suffix); an alias's Id differs, and the monitor
  // restarts on the Id's path. `read -t 0` tells whether the abandon line
  // waits on the shell's input without reading it.
  return fmt::format(
      "u={unit}; e=$(( ${{EPOCHREALTIME/[.,]/}} + {micros} )); mp=; m=; LC_ALL=C; "
      "q() {{ [[ -z $mp ]] || kill $mp 2>/dev/null || :; exit $1; }}; "
      "pth() {{ local i ch h; p=/org/freedesktop/systemd1/unit/; "
      "for (( i=0; i<${{#1}}; i++ )); do ch=${{1:i:1}}; "
      "if [[ $ch == [A-Za-z0-9] ]] && (( i > 0 )) || [[ $ch == [A-Za-z] ]]; then p+=$ch; else printf -v h %02x \"'$ch\"; p+=_$h; fi; done; }}; "
      "sb=; ! command -v stdbuf >/dev/null || sb='stdbuf -oL'; command -v busctl >/dev/null || q {unusable}; "
      "mon() {{ local l; if [[ -n $mp ]]; then kill $mp 2>/dev/null; exec {{m}}<&-; fi; "
      "exec {{m}}< <(exec $sb busctl monitor --system --json=short --match "
      "\"type='signal',path='$p',interface='org.freedesktop.DBus.Properties',member='PropertiesChanged',arg0='org.freedesktop.systemd1.Unit'\" 2>&1); mp=$!; "
      "sub=0; while read -r -t 0.5 -u $m l; do [[ $l != Monitoring* ]] || {{ sub=1; break; }}; done; }}; "
      "c() {{ local o s j; o=$(systemctl --no-pager show --property=Id,ActiveState -- \"$u\") || q {unusable}; "
      "id=${{o#*Id=}}; id=${{id%%$'\\n'*}}; s=${{o#*ActiveState=}}; s=${{s%%$'\\n'*}}; "
      "case $s in active) r=0;; failed) r={failed};; inactive) r=9; j=$(systemctl --no-pager list-jobs --full 2>&1) || :; "
      "[[ $j == *'No jobs'* && $(systemctl --no-pager show --property=ActiveState --value -- \"$u\") == inactive ]] && r={inactive} || :;; "
      "*) r=9;; esac; }}; "
      "g=$u; case $g in *.service|*.socket|*.target|*.device|*.mount|*.automount|*.swap|*.timer|*.path|*.slice|*.scope) ;; *) g+=.service;; esac; "
      "pth \"$g\"; mon; c; [[ -n $id ]] || q {unusable}; "
      "if [[ $id != \"$g\" ]]; then pth \"$id\"; mon; c; fi; (( r == 9 )) || q $r; "
      "b=500000; n=$(( ${{EPOCHREALTIME/[.,]/}} + b )); "
      "while :; do t=${{EPOCHREALTIME/[.,]/}}; (( t < e )) || q {timed_out}; "
      "if read -r -t 0 _; then q {abandoned}; fi; "
      "l=; rr=0; read -r -t 0.2 -u $m l || rr=$?; "
      "if (( rr == 1 )) && [[ -z $l ]]; then q {unusable}; fi; "
      "if (( rr > 128 )); then (( sub || t < n )) && continue; c; (( r == 9 )) || q $r; "
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
