// The root shell of a machine's backdoor: a bash that reads command lines
// from a stream socket (QEMU's virtio console, a container's shell) and
// answers each in the frame of shell_protocol.h. A session waits for the
// backdoor's greeting, runs one command at a time under a deadline, and
// keeps replies in order: a command the driver stopped waiting for (Ctrl-C,
// a probe past its deadline) is read and dropped before the next one, after
// the driver told it to end if it can be told (a wait polling in the guest).
#pragma once

#include <boost/asio/local/stream_protocol.hpp>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "test_driver/channel_owner.h"
#include "test_driver/deadline.h"
#include "test_driver/event_loop.h"

namespace td {

class ShellReply;

// One command for the guest's shell.
struct ShellCommand {
  std::string description;  // the user's command, for messages
  std::string line;         // what bash reads: shell_command_line(), then the command's input
  bool has_status = true;   // the line reports the exit status
  Deadline deadline = Deadline::never();  // when the driver stops waiting for the reply
  // Written to the shell before the next command when the driver stopped
  // waiting for this one (Ctrl-C, the deadline), to end it early; empty:
  // the next command waits for it to end by itself.
  std::string_view abandon_line = {};
};

struct ShellResult {
  int status = -1;     // -1 without has_status
  std::string output;  // decoded, valid UTF-8
};

class ShellSession {
 public:
  // What current guests print when the shell starts; older ones print an
  // empty line.
  static constexpr std::string_view kGreeting = "Spawning backdoor root shell...";

  // `label` starts the session's error messages ("machine 'server'").
  ShellSession(EventLoop& loop, ChannelOwner& owner, std::string label);

  boost::asio::local::stream_protocol::socket& socket() { return socket_; }
  // A flag that ends any wait of the session with `reason` (QMP's
  // GUEST_PANICKED); it must outlive the session.
  void stop_when(const bool* flag, std::string reason);

  // Waits for the greeting line; anything before it is noise. Calls
  // `still_waiting` with the time waited every 30 s (hang_bounds.h), as a silent wait
  // looks hung.
  void wait_for_greeting(Duration timeout, const std::function<void(Duration waited)>& still_waiting);
  // After the guest was restored from a snapshot: the same shell answers on
  // a new connection, but sends no greeting. Sends `echo <nonce>` and drops
  // everything up to the line that is the nonce; forgets a stale command
  // (its reply went with the old connection). Fails naming the step when no
  // such line comes by the deadline.
  void resync(const std::string& nonce, Deadline deadline);
  // Runs a command and returns its reply. Throws td::MachineError when the
  // shell fails, garbles the reply or does not answer by the deadline, and
  // td::Interrupted on Ctrl-C; in both of the last cases the command's
  // reply is dropped before the next command.
  ShellResult run(const ShellCommand& command);
  // Writes raw bytes to the shell ("poweroff\n").
  void write(std::string_view data, const std::string& step);
  // True while a command the driver stopped waiting for may still answer.
  bool has_stale_command() const { return stale_.has_value(); }
  // The shell went away (a reboot): a command it still ran never answers.
  void forget_stale_command() { stale_.reset(); }

 private:
  struct StaleCommand {
    std::string description;
    Deadline deadline;
    std::string abandon_line;  // written until the reply comes, if not empty
  };
  void finish_stale_command();
  // Reads a reply into `reply`; false when the deadline passed first.
  bool read_reply(ShellReply& reply, Deadline deadline, const std::string& step);
  [[noreturn]] void fail_outcome(EventLoop::Outcome outcome, const std::string& step);

  EventLoop& loop_;
  ChannelOwner& owner_;
  std::string label_;
  boost::asio::local::stream_protocol::socket socket_;
  std::string buffer_;  // bytes read past the last reply
  const bool* stop_flag_ = nullptr;
  std::string stop_reason_;
  std::optional<StaleCommand> stale_;
};

}  // namespace td
