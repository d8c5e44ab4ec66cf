#include "test_driver/shell_session.h"

#include <fmt/format.h>

#include <array>
#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>

#include "test_driver/errors.h"
#include "test_driver/hang_bounds.h"
#include "test_driver/shell_protocol.h"
#include "test_driver/utf8.h"

namespace asio = boost::asio;

namespace td {
ShellSession::ShellSession(EventLoop& loop, ChannelOwner& owner, std::string label)
    : loop_(loop), owner_(owner), label_(std::move(label)), socket_(loop.io()) {}

void ShellSession::stop_when(const bool* flag, std::string reason) {
  stop_flag_ = flag;
  stop_reason_ = std::move(reason);
}

void ShellSession::fail_outcome(EventLoop::Outcome outcome, const std::string& step) {
  if (outcome == EventLoop::Outcome::kInterrupted) throw Interrupted();
  if (outcome == EventLoop::Outcome::kStopped) owner_.fail_channel(step, stop_reason_);
  owner_.fail_channel(step, "unexpected end of the wait");
}

void ShellSession::wait_for_greeting(Duration timeout, const std::function<void(Duration)>& still_waiting) {
  const std::string step = "waiting for the guest's backdoor shell";
  auto tic = Clock::now();
  auto deadline = Deadline::after(timeout);
  const Duration note_every = hang_bounds::still_waiting_every();
  auto next_note = Deadline::after(note_every);
  for (;;) {
    bool done = false;
    boost::system::error_code ec;
    size_t n = 0;
    asio::async_read_until(socket_, asio::dynamic_buffer(buffer_), '\n', [&](auto e, size_t k) {
      ec = e;
      n = k;
      done = true;
    });
    auto outcome = loop_.run(done, [&] { socket_.cancel(); },
                             {.deadline = deadline.sooner(next_note), .stop_flag = stop_flag_});
    if (outcome == EventLoop::Outcome::kTimedOut) {
      if (deadline.passed())
        owner_.fail_channel(step, fmt::format("no \"{}\" line within {} seconds", kGreeting, timeout.to_string()));
      still_waiting(Duration(Clock::now() - tic));
      next_note = next_note.extended_by(note_every);
      continue;
    }
    if (outcome != EventLoop::Outcome::kDone) fail_outcome(outcome, step);
    if (ec) owner_.fail_channel(step, ec == asio::error::eof ? "the shell connection closed" : ec.message());
    std::string line = buffer_.substr(0, n);
    buffer_.erase(0, n);
    // Current guests print the greeting, older ones a bare newline;
    // anything else before it is noise.
    if (line.find(kGreeting) != std::string::npos || line == "\n" || line == "\r\n") return;
  }
}

void ShellSession::resync(const std::string& nonce, Deadline deadline) {
  const std::string step = "resynchronising with the guest's backdoor shell after a restore";
  stale_.reset();
  buffer_.clear();
  write("echo " + nonce + "\n", step);
  for (;;) {
    bool done = false;
    boost::system::error_code ec;
    size_t n = 0;
    asio::async_read_until(socket_, asio::dynamic_buffer(buffer_), '\n', [&](auto e, size_t k) {
      ec = e;
      n = k;
      done = true;
    });
    auto outcome = loop_.run(done, [&] { socket_.cancel(); }, {.deadline = deadline, .stop_flag = stop_flag_});
    if (outcome == EventLoop::Outcome::kTimedOut)
      owner_.fail_channel(step, fmt::format("the shell did not echo the nonce {} in time", nonce));
    if (outcome != EventLoop::Outcome::kDone) fail_outcome(outcome, step);
    if (ec) owner_.fail_channel(step, ec == asio::error::eof ? "the shell connection closed" : ec.message());
    std::string line = buffer_.substr(0, n);
    buffer_.erase(0, n);
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
    if (line == nonce) return;
  }
}

void ShellSession::finish_stale_command() {
  if (!stale_) return;
  // Ctrl-C or the driver's deadline stopped the driver's wait, not the
  // guest's command: its reply comes first, and is dropped.
  std::string step = fmt::format("waiting for the earlier command `{}` (the driver stopped waiting for it)",
                                 stale_->description);
  owner_.log(step);
  ShellReply dropped(true);
  bool answered = false;
  if (stale_->abandon_line.empty()) {
    answered = read_reply(dropped, stale_->deadline, step);
  } else {
    // The line is written again every second until the reply comes: a byte
    // can be lost to the guest's `read -t` when its pause ends just as the
    // byte arrives (seen once in CI: the poll then ran its whole 900 s).
    // Extra lines reach bash's own reader as empty commands, which answer
    // nothing.
    const Duration resend_every(1.0);
    while (!answered && !stale_->deadline.passed()) {
      write(stale_->abandon_line, step);
      answered = read_reply(dropped, stale_->deadline.sooner(Deadline::after(resend_every)), step);
    }
  }
  if (!answered) {
    // The next command waits for it again, as long.
    stale_->deadline = Deadline::after(hang_bounds::stale_grace());
    throw MachineError(fmt::format("{}: {}: it has not finished in time; the guest shell is still busy{}", label_, step,
                                   owner_.recent_output()));
  }
  stale_.reset();
}

ShellResult ShellSession::run(const ShellCommand& command) {
  finish_stale_command();
  std::string step = fmt::format("running `{}`", command.description);
  write(command.line, step);
  ShellReply reply(command.has_status);
  bool answered = false;
  try {
    answered = read_reply(reply, command.deadline, step);
  } catch (const Interrupted&) {
    stale_ = StaleCommand{command.description, command.deadline, std::string(command.abandon_line)};
    throw;
  }
  if (!answered) {
    // A probe's guest command has no timeout of its own: give it a grace
    // period before the next command gives up on the shell.
    stale_ = StaleCommand{command.description, Deadline::after(hang_bounds::stale_grace()), std::string(command.abandon_line)};
    throw MachineError(
        fmt::format("{}: {}: no answer from the guest shell in time{}", label_, step, owner_.recent_output()));
  }
  if (reply.error()) throw MachineError(fmt::format("{}: {}: {:.300}", label_, step, to_valid_utf8(*reply.error())));
  return {reply.status(), to_valid_utf8(reply.take_output())};
}

bool ShellSession::read_reply(ShellReply& reply, Deadline deadline, const std::string& step) {
  if (!buffer_.empty()) buffer_.erase(0, reply.feed(buffer_));
  // Each piece is read into a buffer of its own and decoded at once, so the
  // socket is drained at a steady pace however large the output grows.
  std::array<char, 256 * 1024> chunk;
  boost::system::error_code ec;
  bool done = reply.complete();
  bool cancelled = false;
  std::function<void()> read_more = [&] {
    socket_.async_read_some(asio::buffer(chunk), [&](auto e, size_t n) {
      std::string_view piece(chunk.data(), n);
      size_t used = reply.feed(piece);
      if (used < n) buffer_.append(piece.substr(used));
      if (e || reply.complete() || cancelled) {
        ec = e;
        done = true;
      } else {
        read_more();
      }
    });
  };
  if (!done) read_more();
  auto outcome = loop_.run(done, [&] { cancelled = true; socket_.cancel(); }, {.deadline = deadline, .stop_flag = stop_flag_});
  if (reply.complete()) return true;
  if (outcome == EventLoop::Outcome::kTimedOut) return false;
  if (outcome != EventLoop::Outcome::kDone) fail_outcome(outcome, step);
  if (!reply.complete())
    owner_.fail_channel(step, ec == asio::error::eof ? "the guest shell's connection closed" : ec.message());
  return true;
}

void ShellSession::write(std::string_view data, const std::string& step) {
  boost::system::error_code ec;
  bool done = false;
  asio::async_write(socket_, asio::buffer(data), [&](auto e, size_t) {
    ec = e;
    done = true;
  });
  // A minute, plus a second per 100 kB for large inputs.
  auto deadline = Deadline::after(Duration(60.0 + static_cast<double>(data.size() / 100000)));
  auto outcome = loop_.run(done, [&] { socket_.cancel(); }, {.deadline = deadline});
  if (outcome == EventLoop::Outcome::kTimedOut) owner_.fail_channel(step, "the guest shell does not read its input");
  if (outcome != EventLoop::Outcome::kDone) fail_outcome(outcome, step);
  if (ec) owner_.fail_channel(step, ec.message());
}

}  // namespace td
