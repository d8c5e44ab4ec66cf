// Hang bounds: how long the driver waits on the host for a guest or QEMU
// that has gone silent before it fails naming the step (or, for the
// still-waiting note, how often it says it is still waiting). Each has a
// default and an environment variable that overrides it, in seconds, so that
// a test can reach the bound with a guest stopped through QMP instead of
// waiting minutes; docs/user-guide.md lists the variables.
#pragma once

#include "test_driver/duration.h"

namespace td::hang_bounds {

// How much longer than a command's own (guest-side) timeout the driver waits
// for its reply: TEST_DRIVER_COMMAND_MARGIN, default 60.
Duration command_margin();
// How long a monitor or QMP command waits for its reply:
// TEST_DRIVER_REPLY_TIMEOUT, default 300.
Duration reply_timeout();
// How often the wait for the backdoor shell logs that it is still waiting:
// TEST_DRIVER_STILL_WAITING_EVERY, default 30 (0 is refused: it would spin).
Duration still_waiting_every();
// How long the next command waits for a probe's command the driver stopped
// waiting for: TEST_DRIVER_STALE_GRACE, default 60.
Duration stale_grace();

}  // namespace td::hang_bounds
