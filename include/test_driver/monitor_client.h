// QEMU's human monitor: a stream socket that QEMU connects to; one command
// line out, the reply back up to the "(qemu) " prompt. Bounded by a reply
// timeout; "quit" is answered by the connection closing.
#pragma once

#include <boost/asio/local/stream_protocol.hpp>
#include <string>
#include <string_view>

#include "test_driver/channel_owner.h"
#include "test_driver/duration.h"
#include "test_driver/event_loop.h"

namespace td {

class MonitorClient {
 public:
  static constexpr std::string_view kPrompt = "(qemu) ";
  // What the connection closing before the prompt means.
  enum class OnClose { kFail, kAnswer };

  MonitorClient(EventLoop& loop, ChannelOwner& owner) : loop_(loop), owner_(owner), socket_(loop.io()) {}

  boost::asio::local::stream_protocol::socket& socket() { return socket_; }
  // Reads up to the next prompt (the banner, after connecting); returns
  // everything before and including it, as valid UTF-8.
  std::string read_reply(OnClose on_close);
  // Sends one command line. Throws td::Error for a command with a newline
  // (it would be two).
  void send(const std::string& command);
  // How the reply to `command` may end: "quit" closes the connection.
  static OnClose on_close_for(const std::string& command);
  // send(), then read_reply().
  std::string command(const std::string& command) {
    send(command);
    return read_reply(on_close_for(command));
  }

 private:
  EventLoop& loop_;
  ChannelOwner& owner_;
  boost::asio::local::stream_protocol::socket socket_;
  std::string buffer_;
  bool stale_ = false;  // an interrupted command's reply is still to come
};

}  // namespace td
