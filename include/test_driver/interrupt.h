// A process-wide "the user pressed Ctrl-C" flag that blocking waits can see.
// It is a self-pipe: a signal handler (or Python, via signal.set_wakeup_fd)
// writes a byte, and every wait of the driver also watches the read end, so
// an interrupt cuts any wait short with td::Interrupted instead of waiting
// for a timeout.
#pragma once

#include <chrono>

namespace td::interrupt {

// The pipe's write end (non-blocking), for signal.set_wakeup_fd.
int write_fd();
// The pipe's read end (non-blocking), for waits to watch.
int read_fd();
// Marks an interrupt (async-signal-safe).
void raise();
// True when an interrupt is pending.
bool pending();
// Forgets pending interrupts.
void clear();
// Throws td::Interrupted when an interrupt is pending.
void check();
// Sleeps for `duration`, or throws td::Interrupted as soon as an interrupt
// arrives.
void sleep_for(std::chrono::duration<double> duration);

}  // namespace td::interrupt
