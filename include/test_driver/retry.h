// retry(fn, timeout): the polling loop behind every wait_* method and the
// `retry` a test script sees. fn(last_try) is called until it returns true;
// the last call gets last_try = true so it can log what it saw. The timeout
// bounds the whole loop, its last call included: that call is made early
// enough to end by the deadline if it takes as long as the one before.
// Polling starts fast and backs off to once a second, so a wait returns soon
// after its condition holds without loading the guest (see retry_interval).
#pragma once

#include <functional>
#include <string>

#include "test_driver/deadline.h"
#include "test_driver/duration.h"

namespace td {

// Throws td::RequestedAssertionFailed("action timed out after 12.34 seconds
// (timeout=12)"): the time taken, and the timeout.
void retry(const std::function<bool(bool last_try)>& fn, Duration timeout = kDefaultTimeout);
// The same against a deadline the caller made from `timeout` (so that it can
// bound each call by it too); `timeout` names it in the error.
void retry_until(const std::function<bool(bool last_try)>& fn, Deadline deadline, Duration timeout);

// Throws the timeout error of retry() for a wait that began at `start`;
// a `detail` (what the wait saw at best) follows it after ": ".
[[noreturn]] void throw_timed_out(Clock::time_point start, Duration timeout, const std::string& detail = "");

// The pause before the next call of fn: a sixteenth of the time waited so far
// (so a condition that turns true is seen about 3% late), at least 20 ms and
// at least as long as the last call took (so probing never takes more than
// half of the guest's time), at most one second (the reference's interval).
double retry_interval(double elapsed_seconds, double last_call_seconds);

}  // namespace td
