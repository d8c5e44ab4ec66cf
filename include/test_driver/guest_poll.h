// A wait's condition polled inside the guest: one bash command that tests a
// condition every 10 ms with builtins only (`test -e`, `/dev/tcp`; `read -t`
// on the shell's input as the pause) until it holds or its own deadline
// passes, so that the guest starts no process per try and the driver sees
// the condition within a few milliseconds of it becoming true. The command
// exits 0 when the condition held, kGuestPollTimedOut when its deadline
// passed first, and kGuestPollAbandoned when a line arrives on its input:
// the driver sends kGuestPollAbandonLine when it stops waiting (Ctrl-C), so
// the shell is free again at once instead of at the poll's deadline.
#pragma once

#include <string>
#include <string_view>

#include "test_driver/duration.h"

namespace td {

inline constexpr int kGuestPollTimedOut = 1;
inline constexpr int kGuestPollAbandoned = 2;
// A line the shell reads as an empty command if the poll has already ended.
inline constexpr std::string_view kGuestPollAbandonLine = "\n";

// The bash command polling `condition` (a bash command list, quoted already)
// for at most `within`. `pause_after_process`: the pause once a try ran a
// program (a condition may start one when a cheap test passes, as the Unix

std::string guest_poll_command(std::string_view condition, Duration within);

// wait_for_unit's guest side for a system unit: the same deadline and
// abandon line, but the pause is a read of `busctl monitor`'s JSON lines,
// filtered to the unit's PropertiesChanged signals, so the guest wakes when
// systemd says the unit changed, not on a timer. It checks the state with
// systemctl when it starts, when the unit turns inactive (are jobs pending?)
// and, to close the race with the monitor's subscription, 0.5 s after the
// start and then at growing intervals up to 10 s. Exits 0 active, 1 and 2 as
// the poll, kUnitWaitFailed, kUnitWaitInactive (inactive with no jobs
// pending), kUnitWaitUnusable (no systemctl or busctl monitor here: the
// driver polls instead).
inline constexpr int kUnitWaitFailed = 3;
inline constexpr int kUnitWaitInactive = 4;
inline constexpr int kUnitWaitUnusable = 5;
std::string guest_unit_wait_command(std::string_view quoted_unit, Duration within);

}  // namespace td
