// The QEMU Machine Protocol, as a client: JSON commands out, replies back,
// and the asynchronous events QEMU sends in between. Events are read
// whenever the event loop runs (for any wait, not only QMP's own), so they
// are seen and logged as they happen, and GUEST_PANICKED can end any wait.
#pragma once

#include <boost/asio/local/stream_protocol.hpp>
#include <deque>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include "test_driver/channel_owner.h"
#include "test_driver/deadline.h"
#include "test_driver/event_loop.h"
#include "test_driver/json.h"

namespace td {

class QmpClient : public EventLoop::BackgroundReader {
 public:
  // `label` starts the text of a QmpError ("machine 'server'").
  QmpClient(EventLoop& loop, ChannelOwner& owner, std::string label);
  ~QmpClient() override { loop_.remove_background_reader(this); }
  QmpClient(const QmpClient&) = delete;
  QmpClient& operator=(const QmpClient&) = delete;

  // Connects to QEMU's QMP socket (QEMU listens on it); the error when
  // nothing listens there. Then negotiate().
  boost::system::error_code connect(const std::filesystem::path& path);
  // qmp_capabilities: leaves the greeting's negotiation mode.
  void negotiate() { command("qmp_capabilities"); }
  bool is_open() const { return socket_.is_open(); }
  // Called for each event as it is read (to log it).
  void on_event(std::function<void(const Json&)> handler) { on_event_ = std::move(handler); }

  // Sends a command and returns its "return" value. Throws td::QmpError for
  // an error reply; "quit" may be answered by the connection closing.
  Json command(const std::string& name, const Json& arguments = Json());
  // getfd: hands QEMU a copy of `fd` (SCM_RIGHTS on the socket) under
  // `fdname`, for a migration URI "fd:<fdname>". The caller keeps `fd`.
  void send_fd(int fd, const std::string& fdname);
  // The "status" of the last MIGRATION event ("" before any; QEMU sends
  // them once the "events" migration capability is on).
  const std::string& migration_status() const { return migration_status_; }
  void forget_migration_status() { migration_status_.clear(); }
  // Runs the loop (reading replies and events) until `condition` holds;
  // false once `deadline` passed first. Throws td::Interrupted on Ctrl-C and
  // fails the channel (naming `step`) when the connection closes.
  bool wait_until(const std::function<bool()>& condition, Deadline deadline, const std::string& step);
  // The first event not consumed by an earlier call that `filter` accepts
  // (the events before it are consumed too); nullopt once `deadline` passed.
  std::optional<Json> wait_for_event(const std::function<bool(const Json&)>& filter, Deadline deadline);
  // Raised by a GUEST_PANICKED event; stays raised.
  const bool& panicked() const { return panicked_; }

  void resume() override;
  void pause() override;

 private:
  void read_next();
  Json read_reply(const std::string& step, bool connection_may_close);

  EventLoop& loop_;
  ChannelOwner& owner_;
  std::string label_;
  boost::asio::local::stream_protocol::socket socket_;
  std::string buffer_;
  bool reading_ = false;
  bool paused_ = true;  // outside a run of the loop nothing may stay pending
  bool woken_ = false;  // a message arrived or the connection closed
  bool panicked_ = false;
  int abandoned_ = 0;  // replies of interrupted commands, still to come and be dropped
  std::deque<Json> replies_;
  std::deque<Json> events_;  // not yet consumed by wait_for_event
  std::function<void(const Json&)> on_event_;
  std::string migration_status_;
};

}  // namespace td
