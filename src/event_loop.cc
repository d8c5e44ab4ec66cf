#include "test_driver/event_loop.h"

#include <unistd.h>

#include <boost/asio/steady_timer.hpp>

#include "test_driver/interrupt.h"

namespace asio = boost::asio;

namespace td {

EventLoop::EventLoop() { interrupt_watch_.assign(::dup(interrupt::read_fd())); }

void EventLoop::watch_exit_of(int pidfd) {
  if (exit_watch_.is_open()) exit_watch_.close();
  exit_watch_.assign(::dup(pidfd));
}

EventLoop::Outcome EventLoop::run(const bool& done, const std::function<void()>& cancel, const Until& until) {
  bool exited = false, interrupted = false, timed_out = false;
  if (until.process_exits && exit_watch_.is_open())
    exit_watch_.async_wait(asio::posix::descriptor_base::wait_read, [&](auto ec) { exited = !ec; });
  interrupt_watch_.async_wait(asio::posix::descriptor_base::wait_read, [&](auto ec) { interrupted = !ec; });
  asio::steady_timer timer(io_);
  if (!until.deadline.is_never()) {
    timer.expires_at(until.deadline.time_point());
    timer.async_wait([&](auto ec) { timed_out = !ec; });
  }
  auto stopped = [&] { return until.stop_flag && *until.stop_flag; };
  io_.restart();
  for (auto* reader : readers_) reader->resume();
  while (!done && !exited && !interrupted && !timed_out && !stopped()) {
    if (io_.run_one() == 0) break;
  }
  // Cancelling completes the operation's handler too (which may set `done`,
  // with operation_aborted): what ended the run is decided before that.
  const bool finished = done;
  if (!finished) cancel();
  if (exit_watch_.is_open()) exit_watch_.cancel();
  interrupt_watch_.cancel();
  timer.cancel();
  // A message handled while the cancelled handlers run must not arm a new
  // read: io_.run() below would wait for it forever.
  for (auto* reader : readers_) reader->pause();
  io_.restart();
  io_.run();
  if (finished) return Outcome::kDone;
  if (interrupted) return Outcome::kInterrupted;
  if (exited) return Outcome::kExited;
  if (stopped()) return Outcome::kStopped;
  return Outcome::kTimedOut;
}

}  // namespace td
