// BaseMachine: commands in the root shell, their waits, and logging.
#include "test_driver/base_machine.h"

#include <fmt/format.h>

#include "test_driver/errors.h"
#include "test_driver/guest_poll.h"
#include "test_driver/hang_bounds.h"
#include "test_driver/retry.h"
#include "test_driver/shell_protocol.h"
#include "test_driver/shell_session.h"
#include "test_driver/shell_words.h"

namespace td {
namespace {

// The shortest guest-side timeout a wait's last try gets.
constexpr Duration kShortestTry{0.01};

}  // namespace

void BaseMachine::log(const std::string& message) { rootlog().log(message, {{"machine", name()}}); }

void BaseMachine::log_serial(const std::string& message) { rootlog().log_serial(message, name()); }

std::unique_ptr<Logger::Nest> BaseMachine::nested(const std::string& message, const LogAttributes& attributes) {
  LogAttributes all{{"machine", name()}};
  all.insert(all.end(), attributes.begin(), attributes.end());
  return std::make_unique<Logger::Nest>(rootlog(), message, all);
}

void BaseMachine::run_callbacks() {
  for (auto& callback : setup_.callbacks) callback();
}

Deadline BaseMachine::host_deadline(Deadline guest_deadline) { return guest_deadline.extended_by(hang_bounds::command_margin()); }

std::pair<int, std::string> BaseMachine::execute(const std::string& command, bool check_return,
                                                 std::optional<Duration> timeout, bool check_output) {
  return run_command(command, {.check_return = check_return, .timeout = timeout, .check_output = check_output});
}

std::pair<int, std::string> BaseMachine::run_command(const std::string& command, const CommandOptions& options) {
  std::lock_guard lock(mutex_);
  run_callbacks();
  connect();
  if (options.timeout && options.timeout->seconds() <= 0)
    throw Error(fmt::format("timeout must be positive, got {}", options.timeout->to_string()));
  // The command reaches the guest's bash as one quoted word either way, so
  // that no quote, comment or parenthesis in it can leave bash waiting for
  // more input (the reference hung there when there was no timeout).
  std::string wrapped = options.timeout ? guest_timeout_command(command, *options.timeout)
                                        : "eval " + bash_ansi_c_quote(command);
  ShellCommand request;
  request.description = command;
  request.line = shell_command_line(wrapped, options.check_output, options.check_return);
  // Input follows the command line on the shell's stdin (bash reads its
  // script byte by byte, so the bytes after the newline are the command's).
  request.line += options.input;
  request.has_status = options.check_return;
  request.abandon_line = options.abandon_line;
  if (options.timeout)
    request.deadline = host_deadline(Deadline::after(*options.timeout));
  else if (options.probe_until)
    request.deadline = *options.probe_until;
  auto started = std::chrono::steady_clock::now();
  ShellResult result = session().run(request);
  rootlog().record_command(name(), started);
  if (!options.check_return) return {-1, std::move(result.output)};
  if (!options.check_output) return {-2, ""};
  return {result.status, std::move(result.output)};
}

std::pair<int, std::string> BaseMachine::run_guest_loop(const std::function<std::string(Duration)>& command_for,
                                                        std::string_view what, Clock::time_point start,
                                                        Deadline deadline, Duration timeout) {
  // The guest's loop ends at the deadline by its own clock; the driver waits
  // for it until the deadline plus kHostTimeoutMargin. A loop that ends
  // early by the driver's clock is sent again for what is left.
  for (;;) {
    Duration given = deadline.remaining();
    auto sent = Clock::now();
    auto [status, out] = run_command(command_for(given),
                                     {.probe_until = host_deadline(deadline), .abandon_line = kGuestPollAbandonLine});
    if (status != kGuestPollTimedOut) return {status, std::move(out)};
    if (deadline.passed()) throw_timed_out(start, timeout);
    // Less than half of its time: not the guest's clock, but a condition
    // that makes the loop exit (an error under `set -u`).
    if (Duration(Clock::now() - sent).seconds() < given.seconds() / 2) throw_ended_early(what, status, out);
  }
}

void BaseMachine::throw_ended_early(std::string_view what, int status, const std::string& out) const {
  throw MachineError(fmt::format("{}: the guest's {} ended early with status {}: {}", label(), what, status, out));
}

void BaseMachine::poll_in_guest(const std::string& condition, Clock::time_point start, Deadline deadline,
                                Duration timeout) {
  std::string what = fmt::format("poll for `{}`", condition);
  auto [status, out] = run_guest_loop([&](Duration given) { return guest_poll_command(condition, given); }, what,
                                      start, deadline, timeout);
  if (status != 0) throw_ended_early(what, status, out);
}

std::string BaseMachine::succeed(const std::vector<std::string>& commands, std::optional<Duration> timeout) {
  std::string output;
  for (const auto& command : commands) {
    auto nest = nested("must succeed: " + command);
    auto [status, out] = run_command(command, {.timeout = timeout});
    if (status != 0) {
      log("output: " + out);
      throw RequestedAssertionFailed(fmt::format("command `{}` failed (exit code {})", command, status));
    }
    output += out;
  }
  return output;
}

std::string BaseMachine::fail(const std::vector<std::string>& commands, std::optional<Duration> timeout) {
  std::string output;
  for (const auto& command : commands) {
    auto nest = nested("must fail: " + command);
    auto [status, out] = run_command(command, {.timeout = timeout});
    if (status == 0) throw RequestedAssertionFailed(fmt::format("command `{}` unexpectedly succeeded", command));
    output += out;
  }
  return output;
}

std::string BaseMachine::wait_until(Want want, const std::string& command, Duration timeout,
                                    std::optional<Duration> attempt_timeout) {
  // Each try is bounded by the wait's timeout, which `timeout 0` would lift.
  if (timeout.seconds() <= 0) throw Error(fmt::format("timeout must be positive, got {}", timeout.to_string()));
  if (attempt_timeout && attempt_timeout->seconds() <= 0)
    throw Error(fmt::format("attempt_timeout must be positive, got {}", attempt_timeout->to_string()));
  auto nest = nested((want == Want::kSuccess ? "waiting for success: " : "waiting for failure: ") + command);
  auto deadline = Deadline::after(timeout);
  std::string output;
  retry_until(
      [&](bool) {
        // Each try is killed in the guest when the wait's time is up.
        Duration per_try = std::max(deadline.remaining(), kShortestTry);
        if (attempt_timeout) per_try = std::min(per_try, *attempt_timeout);
        auto [status, out] = run_command(command, {.timeout = per_try});
        output = std::move(out);
        return (status == 0) == (want == Want::kSuccess);
      },
      deadline, timeout);
  return output;
}

std::string BaseMachine::wait_until_succeeds(const std::string& command, Duration timeout,
                                             std::optional<Duration> attempt_timeout) {
  return wait_until(Want::kSuccess, command, timeout, attempt_timeout);
}

std::string BaseMachine::wait_until_fails(const std::string& command, Duration timeout,
                                          std::optional<Duration> attempt_timeout) {
  return wait_until(Want::kFailure, command, timeout, attempt_timeout);
}

void BaseMachine::sleep(double seconds) { succeed({fmt::format("sleep {}", seconds)}); }

}  // namespace td
