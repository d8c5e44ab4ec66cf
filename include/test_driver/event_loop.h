// The one Boost.Asio io_context that a running machine's channels share,
// and the only way to wait on it: run until an operation completes, its
// deadline passes, the machine's process exits, the user interrupts (Ctrl-C,
// see interrupt.h) or a stop flag rises (the guest panicked). No wait polls,
// and none can outlive a dead process. Only the thread that holds the
// machine's lock runs it.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <functional>
#include <vector>

#include "test_driver/deadline.h"

namespace td {

class EventLoop {
 public:
  enum class Outcome { kDone, kTimedOut, kExited, kInterrupted, kStopped };

  // What else ends a run besides its operation completing.
  struct Until {
    Deadline deadline = Deadline::never();
    // The process given to watch_exit_of() exiting.
    bool process_exits = false;
    // A flag a channel raises (QMP's GUEST_PANICKED); nullptr for none.
    const bool* stop_flag = nullptr;
  };

  // A channel that reads whenever the loop runs, so that what it receives
  // (QMP events) is seen during any wait; between runs it must have nothing
  // pending on the io_context.
  class BackgroundReader {
   public:
    virtual ~BackgroundReader() = default;
    virtual void resume() = 0;
    // Cancels its pending read; the handler runs in the loop's final drain.
    virtual void pause() = 0;
  };

  EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  boost::asio::io_context& io() { return io_; }
  // Until::process_exits watches this pidfd (duplicated).
  void watch_exit_of(int pidfd);
  void add_background_reader(BackgroundReader* reader) { readers_.push_back(reader); }
  void remove_background_reader(BackgroundReader* reader) { std::erase(readers_, reader); }

  // Runs the loop until `done` is true or `until` ends the run; cancels the
  // operation (with `cancel`) unless it is done, and completes every
  // cancelled handler before returning, since they refer to the caller's
  // locals.
  Outcome run(const bool& done, const std::function<void()>& cancel, const Until& until);

 private:
  boost::asio::io_context io_;
  boost::asio::posix::stream_descriptor exit_watch_{io_};       // readable once the process exited
  boost::asio::posix::stream_descriptor interrupt_watch_{io_};  // readable once the user interrupted
  std::vector<BackgroundReader*> readers_;
};

}  // namespace td
