#include "test_driver/qmp_client.h"

#include <fmt/format.h>

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>

#include "test_driver/errors.h"
#include "test_driver/hang_bounds.h"

namespace asio = boost::asio;
using asio::local::stream_protocol;

namespace td {

QmpClient::QmpClient(EventLoop& loop, ChannelOwner& owner, std::string label)
    : loop_(loop), owner_(owner), label_(std::move(label)), socket_(loop.io()) {
  loop_.add_background_reader(this);
}

boost::system::error_code QmpClient::connect(const std::filesystem::path& path) {
  boost::system::error_code ec;
  socket_.connect(stream_protocol::endpoint(path.string()), ec);
  if (ec) socket_.close();
  return ec;
}

void QmpClient::resume() {
  paused_ = false;
  read_next();
}

void QmpClient::pause() {
  paused_ = true;
  if (reading_) socket_.cancel();
}

void QmpClient::read_next() {
  if (!socket_.is_open() || reading_ || paused_) return;
  reading_ = true;
  asio::async_read_until(socket_, asio::dynamic_buffer(buffer_), '\n', [this](auto ec, size_t n) {
    reading_ = false;
    if (ec) {
      if (ec != asio::error::operation_aborted) {
        socket_.close();
        woken_ = true;
      }
      return;
    }
    woken_ = true;
    std::string line = buffer_.substr(0, n);
    buffer_.erase(0, n);
    try {
      Json message = Json::parse(line);
      if (message.find("event")) {
        if (message.string_at("event") == "GUEST_PANICKED") panicked_ = true;
        if (message.string_at("event") == "MIGRATION")
          if (const Json* data = message.find("data")) migration_status_ = data->string_at("status");
        if (on_event_) on_event_(message);
        events_.push_back(std::move(message));
      } else if (message.find("return") || message.find("error")) {
        replies_.push_back(std::move(message));
      }
      // Anything else (the greeting) needs no answer.
    } catch (const Error&) {
      // Not JSON: QEMU would not send that; ignore rather than die.
    }
    read_next();
  });
}

Json QmpClient::read_reply(const std::string& step, bool connection_may_close) {
  const Duration reply_timeout = hang_bounds::reply_timeout();
  auto deadline = Deadline::after(reply_timeout);
  for (;;) {
    if (!replies_.empty()) {
      Json reply = std::move(replies_.front());
      replies_.pop_front();
      if (abandoned_ > 0) {
        --abandoned_;
        continue;
      }
      return reply;
    }
    if (!socket_.is_open()) {
      if (connection_may_close) return Json();
      owner_.fail_channel(step, "the QMP connection closed");
    }
    woken_ = false;
    switch (loop_.run(woken_, [] {}, {.deadline = deadline})) {
      case EventLoop::Outcome::kInterrupted:
        throw Interrupted();
      case EventLoop::Outcome::kTimedOut:
        owner_.fail_channel(step, fmt::format("no QMP reply within {} seconds", reply_timeout.to_string()));
      default:
        break;
    }
  }
}

namespace {

// A name or an error text as an error message shows it: as it is when it is
// printable, else as a JSON string, so that a NUL does not end the message
// (what() is a C string) and control characters are seen.
std::string for_message(const std::string& text) {
  bool printable = std::all_of(text.begin(), text.end(), [](unsigned char c) { return c >= 0x20 && c != 0x7f; });
  return printable ? text : Json(text).dump();
}

}  // namespace

Json QmpClient::command(const std::string& name, const Json& arguments) {
  Json::Object message{{"execute", name}};
  if (!arguments.is_null()) message.emplace_back("arguments", arguments);
  std::string step = "QMP command " + for_message(name);
  boost::system::error_code ec;
  asio::write(socket_, asio::buffer(Json(message).dump() + "\n"), ec);
  if (ec) owner_.fail_channel(step, ec.message());
  Json reply;
  try {
    reply = read_reply(step, name == "quit");
  } catch (const Interrupted&) {
    ++abandoned_;
    throw;
  }
  if (const Json* error = reply.find("error"))
    throw QmpError(fmt::format("{}: {} failed: {}: {}", label_, step, for_message(error->string_at("class")),
                               for_message(error->string_at("desc"))),
                   error->string_at("class"), error->string_at("desc"));
  const Json* value = reply.find("return");
  return value ? *value : Json();
}

void QmpClient::send_fd(int fd, const std::string& fdname) {
  std::string step = "QMP command getfd";
  std::string text = Json(Json::Object{{"execute", "getfd"}, {"arguments", Json::Object{{"fdname", fdname}}}}).dump() + "\n";
  iovec iov{text.data(), text.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
  // A short message on an idle Unix socket: sent whole, or not at all.
  ssize_t n;
  do n = ::sendmsg(socket_.native_handle(), &msg, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(text.size()))
    owner_.fail_channel(step, n < 0 ? std::strerror(errno) : "the message was cut short");
  Json reply;
  try {
    reply = read_reply(step, false);
  } catch (const Interrupted&) {
    ++abandoned_;
    throw;
  }
  if (const Json* error = reply.find("error"))
    throw QmpError(fmt::format("{}: {} failed: {}: {}", label_, step, for_message(error->string_at("class")),
                               for_message(error->string_at("desc"))),
                   error->string_at("class"), error->string_at("desc"));
}

bool QmpClient::wait_until(const std::function<bool()>& condition, Deadline deadline, const std::string& step) {
  for (;;) {
    if (condition()) return true;
    if (!socket_.is_open()) owner_.fail_channel(step, "the QMP connection closed");
    woken_ = false;
    switch (loop_.run(woken_, [] {}, {.deadline = deadline})) {
      case EventLoop::Outcome::kInterrupted:
        throw Interrupted();
      case EventLoop::Outcome::kTimedOut:
        return condition();
      default:
        break;
    }
  }
}

std::optional<Json> QmpClient::wait_for_event(const std::function<bool(const Json&)>& filter, Deadline deadline) {
  for (;;) {
    while (!events_.empty()) {
      Json event = std::move(events_.front());
      events_.pop_front();
      if (filter(event)) return event;
    }
    if (!socket_.is_open()) owner_.fail_channel("waiting for a QMP event", "the QMP connection closed");
    woken_ = false;
    switch (loop_.run(woken_, [] {}, {.deadline = deadline})) {
      case EventLoop::Outcome::kInterrupted:
        throw Interrupted();
      case EventLoop::Outcome::kTimedOut:
        return std::nullopt;
      default:
        break;
    }
  }
}

}  // namespace td
