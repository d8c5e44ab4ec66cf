// retry(fn, timeout): the polling loop behind every wait_* method and the
// `retry` a test script sees. fn(last_try) is called until it returns true;
// the last call, at the deadline, gets last_try = true so it can log what it
// saw. Polling starts fast and backs off to once a second, so a wait returns
// soon after its condition holds without loading the guest (see
// retry_interval).
#pragma once

#include <functional>
#include <string>

namespace td {

// Throws td::RequestedAssertionFailed("action timed out after N seconds").
void retry(const std::function<bool(bool last_try)>& fn, double timeout_seconds = 900);

// The pause before the next call of fn: a sixteenth of the time waited so far
// (so a condition that turns true is seen about 3% late), at least 20 ms and
// at least as long as the last call took (so probing never takes more than
// half of the guest's time), at most one second (the reference's interval).
double retry_interval(double elapsed_seconds, double last_call_seconds);

// Formats seconds as Python would print the number the user gave: 900 -> "900".
std::string format_seconds(double seconds);

}  // namespace td
