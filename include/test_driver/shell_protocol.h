// The driver's protocol with the guest's backdoor shell, a bash reading
// /dev/hvc0: one line out per command, one line back, "<frame> <status>".
//
// The frame is empty for an empty output; otherwise it is the output's first
// byte in two hex digits, then the base64 of the rest. Bash's builtin read
// takes that first byte, so a command without output (most probes of waits)
// starts no base64 process: starting a dynamically linked program is the
// dominant cost of a command under TCG (~30 ms). The reader still waits until
// every writer of the pipe has closed it, as the reference's base64 did.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "test_driver/base64.h"
#include "test_driver/duration.h"

namespace td {

// The line (with its newline) that runs `wrapped`, a command already quoted
// for bash, with `set -euo pipefail`. Without check_output its output goes to
// /dev/null; without check_return the reply has no status.
std::string shell_command_line(std::string_view wrapped, bool check_output, bool check_return);

// The bash command (for shell_command_line) that runs `command` as the
// reference's `timeout N sh -c COMMAND` does, without starting `timeout` or
// `sh`: the command runs in a subshell in POSIX mode without `set -e` (sh -c
// on NixOS is bash in POSIX mode) in a process group of its own; a watchdog
// subshell pauses with `read -t N` on a pty master nobody writes (or `sleep`
// where /dev/ptmx cannot be opened), and when the time is up sends SIGTERM
// (then SIGCONT) to the command's process group, like `timeout`; then the
// status is 124.
// A command that ends first kills the watchdog's process group (a builtin) and
// reaps it, leaving no orphan to the guest's init, so no program is
// started unless the deadline passes.
std::string guest_timeout_command(std::string_view command, Duration timeout);

// A reply, parsed and decoded as its bytes arrive, so that reading never
// stalls on copying a large output: QEMU's virtconsole drops what the host
// does not drain in time.
class ShellReply {
 public:
  explicit ShellReply(bool has_status) : has_status_(has_status) {}
  // Consumes `data` up to and including the reply's newline; returns how many
  // bytes it consumed.
  size_t feed(std::string_view data);
  bool complete() const { return state_ == State::kDone; }
  // After complete(): why the line is not a reply, if it is not.
  const std::optional<std::string>& error() const { return error_; }
  // The decoded output; moved out, so call it once.
  std::string take_output();
  int status() const { return status_; }

 private:
  enum class State { kFirstByte, kBase64, kStatus, kGarbage, kDone };
  std::string not_a_frame() const;
  void fail(std::string why);
  void end_line();
  void append_output(std::string_view bytes);

  bool has_status_;
  State state_ = State::kFirstByte;
  std::string hex_;
  Base64Decoder base64_;
  // The output in pieces of at most a megabyte, so that no large buffer is
  // copied while the socket is being read.
  std::vector<std::string> output_;
  std::string decoded_;  // scratch for one feed
  std::string status_text_;
  int status_ = -1;
  std::string head_;  // the line's first bytes, for error messages
  std::optional<std::string> error_;
};

}  // namespace td
