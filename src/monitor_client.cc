#include "test_driver/monitor_client.h"

#include <fmt/format.h>

#include <array>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <functional>

#include "test_driver/errors.h"
#include "test_driver/hang_bounds.h"
#include "test_driver/utf8.h"

namespace asio = boost::asio;

namespace td {

std::string MonitorClient::read_reply(OnClose on_close) {
  bool done = false;
  boost::system::error_code ec;
  std::array<char, 16384> chunk;
  bool cancelled = false;
  std::function<void()> read_more = [&] {
    socket_.async_read_some(asio::buffer(chunk), [&](auto e, size_t n) {
      buffer_.append(chunk.data(), n);
      if (e || buffer_.ends_with(kPrompt) || cancelled) {
        ec = e;
        done = true;
      } else {
        read_more();
      }
    });
  };
  read_more();
  const Duration reply_timeout = hang_bounds::reply_timeout();
  EventLoop::Until until{.deadline = Deadline::after(reply_timeout)};
  switch (loop_.run(done, [&] { cancelled = true; socket_.cancel(); }, until)) {
    case EventLoop::Outcome::kInterrupted:
      stale_ = true;
      throw Interrupted();
    case EventLoop::Outcome::kTimedOut:
      owner_.fail_channel("waiting for the monitor prompt", fmt::format("no prompt within {} seconds", reply_timeout.to_string()));
    default:
      break;
  }
  std::string answer = to_valid_utf8(buffer_);
  buffer_.clear();
  if (ec && on_close == OnClose::kFail)
    owner_.fail_channel("waiting for the monitor prompt",
                  ec == asio::error::eof ? "the monitor connection closed" : ec.message());
  return answer;
}

MonitorClient::OnClose MonitorClient::on_close_for(const std::string& command) {
  return command == "quit" || command == "q" ? OnClose::kAnswer : OnClose::kFail;
}

void MonitorClient::send(const std::string& command) {
  if (command.find('\n') != std::string::npos)
    throw Error(fmt::format("a monitor command must be one line, got {:?}", command));
  if (stale_) {
    stale_ = false;
    read_reply(OnClose::kFail);
  }
  boost::system::error_code ec;
  asio::write(socket_, asio::buffer(command + "\n"), ec);
  if (ec) owner_.fail_channel("sending monitor command " + command, ec.message());
}

}  // namespace td
