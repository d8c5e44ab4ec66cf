// What a channel (shell, monitor, QMP) needs from the machine that owns it:
// a way to fail that says which step failed and why, plus what the
// machine's process last printed, and a log line under the machine's name.
// A machine adds whether its process exited; a unit test can simply throw.
#pragma once

#include <string>

#include "test_driver/errors.h"

namespace td {

class ChannelOwner {
 public:
  virtual ~ChannelOwner() = default;
  // The channel is broken: throws channel_error(step, reason).
  [[noreturn]] void fail_channel(const std::string& step, const std::string& reason) {
    throw channel_error(step, reason);
  }
  // The error for a broken channel: which step failed, and why.
  virtual MachineError channel_error(const std::string& step, const std::string& reason) = 0;
  // Text to append to an error about a channel that still works (a reply
  // that is late): the machine's last output lines, or "".
  virtual std::string recent_output() const { return ""; }
  // A line in the log, under the machine's name.
  virtual void log(const std::string& message) = 0;
};

// Fails with td::MachineError("<label>: <step>: <reason>"); logs to rootlog().
class PlainChannelOwner : public ChannelOwner {
 public:
  explicit PlainChannelOwner(std::string label) : label_(std::move(label)) {}
  MachineError channel_error(const std::string& step, const std::string& reason) override;
  void log(const std::string& message) override;

 private:
  std::string label_;
};

}  // namespace td
