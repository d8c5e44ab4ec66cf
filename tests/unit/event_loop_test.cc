#include "test_driver/event_loop.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "channel_test_support.h"
#include "test_driver/interrupt.h"
#include "test_driver/process.h"

namespace asio = boost::asio;
using namespace std::chrono_literals;
using Outcome = td::EventLoop::Outcome;
using td_test::Stopwatch;

namespace {

td::Deadline in_seconds(double seconds) { return td::Deadline::after(td::Duration(seconds)); }

// An operation as a channel starts one: a timer standing for a socket read,
// with the flag run() watches and the cancel it calls.
class TimerOp {
 public:
  TimerOp(asio::io_context& io, std::chrono::steady_clock::duration after) : timer_(io, after) {
    timer_.async_wait([this](boost::system::error_code ec) {
      result = ec;
      done = true;
    });
  }
  std::function<void()> cancel() {
    return [this] {
      ++cancels;
      timer_.cancel();
    };
  }

  bool done = false;
  std::optional<boost::system::error_code> result;  // set by the handler
  int cancels = 0;

 private:
  asio::steady_timer timer_;
};

class EventLoopTest : public ::testing::Test {
 protected:
  td_test::InterruptReset interrupts_;
  td::EventLoop loop;
};

}  // namespace

TEST_F(EventLoopTest, DoneWhenTheOperationCompletes) {
  TimerOp op(loop.io(), 10ms);
  Stopwatch watch;
  EXPECT_EQ(loop.run(op.done, op.cancel(), {.deadline = in_seconds(5)}), Outcome::kDone);
  EXPECT_LT(watch.seconds(), 2.0);
  ASSERT_TRUE(op.result);
  EXPECT_FALSE(*op.result) << op.result->message();
  EXPECT_EQ(op.cancels, 0);  // a completed operation is not cancelled
}

TEST_F(EventLoopTest, DoneAtOnceWhenAlreadyDone) {
  bool done = true;
  int cancels = 0;
  Stopwatch watch;
  EXPECT_EQ(loop.run(done, [&] { ++cancels; }, {}), Outcome::kDone);
  EXPECT_LT(watch.seconds(), 1.0);
  EXPECT_EQ(cancels, 0);
}

TEST_F(EventLoopTest, TimesOutAtTheDeadlineAndCancelsTheOperation) {
  TimerOp op(loop.io(), 1h);
  Stopwatch watch;
  EXPECT_EQ(loop.run(op.done, op.cancel(), {.deadline = in_seconds(0.1)}), Outcome::kTimedOut);
  EXPECT_GE(watch.seconds(), 0.099);
  EXPECT_LT(watch.seconds(), 2.0);
  EXPECT_EQ(op.cancels, 1);
  // The cancelled handler ran before run() returned: it may refer to the
  // caller's locals.
  ASSERT_TRUE(op.result);
  EXPECT_EQ(*op.result, asio::error::operation_aborted);
}

TEST_F(EventLoopTest, ADeadlineAlreadyPassedTimesOutAtOnce) {
  TimerOp op(loop.io(), 1h);
  Stopwatch watch;
  EXPECT_EQ(loop.run(op.done, op.cancel(), {.deadline = td::Deadline::at(td::Clock::now() - 1s)}),
            Outcome::kTimedOut);
  EXPECT_LT(watch.seconds(), 1.0);
  ASSERT_TRUE(op.result);
  EXPECT_EQ(*op.result, asio::error::operation_aborted);
}

TEST_F(EventLoopTest, RunsAgainAfterATimeout) {
  {
    TimerOp op(loop.io(), 1h);
    EXPECT_EQ(loop.run(op.done, op.cancel(), {.deadline = in_seconds(0.02)}), Outcome::kTimedOut);
  }
  TimerOp op(loop.io(), 10ms);
  EXPECT_EQ(loop.run(op.done, op.cancel(), {.deadline = in_seconds(5)}), Outcome::kDone);
  ASSERT_TRUE(op.result);
  EXPECT_FALSE(*op.result);
}

TEST_F(EventLoopTest, InterruptedWhenTheUserInterruptedBefore) {
  td::interrupt::raise();
  TimerOp op(loop.io(), 1h);
  Stopwatch watch;
  EXPECT_EQ(loop.run(op.done, op.cancel(), {.deadline = in_seconds(5)}), Outcome::kInterrupted);
  EXPECT_LT(watch.seconds(), 2.0);
  ASSERT_TRUE(op.result);
  EXPECT_EQ(*op.result, asio::error::operation_aborted);
  // Pending until cleared: the next wait is interrupted too.
  TimerOp again(loop.io(), 1h);
  EXPECT_EQ(loop.run(again.done, again.cancel(), {.deadline = in_seconds(5)}), Outcome::kInterrupted);
  td::interrupt::clear();
  TimerOp after(loop.io(), 10ms);
  EXPECT_EQ(loop.run(after.done, after.cancel(), {.deadline = in_seconds(5)}), Outcome::kDone);
}

TEST_F(EventLoopTest, InterruptedDuringTheRun) {
  asio::steady_timer raiser(loop.io(), 20ms);
  raiser.async_wait([](boost::system::error_code ec) {
    if (!ec) td::interrupt::raise();
  });
  TimerOp op(loop.io(), 1h);
  Stopwatch watch;
  EXPECT_EQ(loop.run(op.done, op.cancel(), {.deadline = in_seconds(5)}), Outcome::kInterrupted);
  EXPECT_GE(watch.seconds(), 0.019);
  EXPECT_LT(watch.seconds(), 2.0);
  EXPECT_EQ(op.cancels, 1);
  EXPECT_TRUE(op.result);
}

TEST_F(EventLoopTest, ExitedWhenTheWatchedProcessExits) {
  td::Process::Options options;
  options.argv = {"sleep", "0.2"};
  auto process = td::Process::spawn(options);
  loop.watch_exit_of(process->pidfd());
  TimerOp op(loop.io(), 1h);
  Stopwatch watch;
  EXPECT_EQ(loop.run(op.done, op.cancel(), {.deadline = in_seconds(10), .process_exits = true}), Outcome::kExited);
  EXPECT_GE(watch.seconds(), 0.15);
  EXPECT_LT(watch.seconds(), 5.0);
  ASSERT_TRUE(op.result);
  EXPECT_EQ(*op.result, asio::error::operation_aborted);
  EXPECT_TRUE(process->wait(std::chrono::steady_clock::now() + 1s));
}

TEST_F(EventLoopTest, ExitOnlyEndsRunsThatWatchForIt) {
  td::Process::Options options;
  options.argv = {"true"};
  auto process = td::Process::spawn(options);
  ASSERT_TRUE(process->wait(std::chrono::steady_clock::now() + 5s));
  loop.watch_exit_of(process->pidfd());
  {
    TimerOp op(loop.io(), 1h);
    EXPECT_EQ(loop.run(op.done, op.cancel(), {.deadline = in_seconds(0.05)}), Outcome::kTimedOut);
  }
  TimerOp op(loop.io(), 1h);
  Stopwatch watch;
  // Already exited (and reaped): the run ends at once.
  EXPECT_EQ(loop.run(op.done, op.cancel(), {.deadline = in_seconds(5), .process_exits = true}), Outcome::kExited);
  EXPECT_LT(watch.seconds(), 2.0);
}

TEST_F(EventLoopTest, StoppedWhenAHandlerRaisesTheStopFlag) {
  bool stop = false;
  asio::steady_timer raiser(loop.io(), 20ms);
  raiser.async_wait([&](boost::system::error_code ec) {
    if (!ec) stop = true;
  });
  TimerOp op(loop.io(), 1h);
  Stopwatch watch;
  EXPECT_EQ(loop.run(op.done, op.cancel(), {.deadline = in_seconds(5), .stop_flag = &stop}), Outcome::kStopped);
  EXPECT_LT(watch.seconds(), 2.0);
  EXPECT_EQ(op.cancels, 1);
  ASSERT_TRUE(op.result);
  EXPECT_EQ(*op.result, asio::error::operation_aborted);
}

TEST_F(EventLoopTest, ARaisedStopFlagStopsAtOnce) {
  bool stop = true;
  TimerOp op(loop.io(), 1h);
  Stopwatch watch;
  EXPECT_EQ(loop.run(op.done, op.cancel(), {.deadline = in_seconds(5), .stop_flag = &stop}), Outcome::kStopped);
  EXPECT_LT(watch.seconds(), 1.0);
  EXPECT_TRUE(op.result);
}

TEST_F(EventLoopTest, ACompletedOperationWinsOverWhatElseEndedTheRun) {
  // The operation's own handler raises the interrupt and the stop flag: the
  // operation still completed, and that is what the caller hears.
  bool stop = false;
  bool done = false;
  asio::steady_timer timer(loop.io(), 10ms);
  timer.async_wait([&](boost::system::error_code) {
    done = true;
    stop = true;
    td::interrupt::raise();
  });
  EXPECT_EQ(loop.run(done, [&] { timer.cancel(); }, {.deadline = in_seconds(5), .stop_flag = &stop}), Outcome::kDone);
}

namespace {

// A background reader like QMP's: a read (here a timer) armed while the loop
// runs, re-armed after each message unless paused.
class FakeReader : public td::EventLoop::BackgroundReader {
 public:
  FakeReader(asio::io_context& io, std::vector<std::string>& journal, std::string name,
             std::chrono::milliseconds every)
      : timer_(io), journal_(journal), name_(std::move(name)), every_(every) {}

  void resume() override {
    journal_.push_back(name_ + " resume");
    paused_ = false;
    arm();
  }
  void pause() override {
    journal_.push_back(name_ + " pause");
    paused_ = true;
    timer_.cancel();
  }
  // A read is pending on the loop.
  bool armed() const { return armed_; }
  int messages = 0;
  int aborted = 0;

 private:
  void arm() {
    if (paused_ || armed_) return;
    armed_ = true;
    timer_.expires_after(every_);
    timer_.async_wait([this](boost::system::error_code ec) {
      armed_ = false;
      if (ec) {
        ++aborted;
        journal_.push_back(name_ + " read aborted");
        return;
      }
      ++messages;
      arm();
    });
  }

  asio::steady_timer timer_;
  std::vector<std::string>& journal_;
  std::string name_;
  std::chrono::milliseconds every_;
  bool paused_ = true;
  bool armed_ = false;
};

}  // namespace

TEST_F(EventLoopTest, BackgroundReadersResumeBeforeAndPauseAfterEachRun) {
  std::vector<std::string> journal;
  FakeReader first(loop.io(), journal, "first", 1h);
  FakeReader second(loop.io(), journal, "second", 1h);
  loop.add_background_reader(&first);
  loop.add_background_reader(&second);

  bool done = false;
  asio::steady_timer op(loop.io(), 10ms);
  op.async_wait([&](boost::system::error_code) {
    journal.push_back("operation");
    done = true;
  });
  EXPECT_EQ(loop.run(done, [&] { op.cancel(); }, {.deadline = in_seconds(5)}), Outcome::kDone);
  // Their cancelled reads completed before run() returned.
  EXPECT_EQ(journal, (std::vector<std::string>{"first resume", "second resume", "operation", "first pause",
                                                "second pause", "first read aborted", "second read aborted"}));

  // Again for a run that times out.
  journal.clear();
  TimerOp never(loop.io(), 1h);
  EXPECT_EQ(loop.run(never.done, never.cancel(), {.deadline = in_seconds(0.02)}), Outcome::kTimedOut);
  ASSERT_GE(journal.size(), 4u);
  EXPECT_EQ(journal[0], "first resume");
  EXPECT_EQ(journal[1], "second resume");
  EXPECT_EQ(std::count(journal.begin(), journal.end(), "first pause"), 1);
  EXPECT_EQ(std::count(journal.begin(), journal.end(), "second pause"), 1);
  EXPECT_EQ(first.aborted, 2);
  EXPECT_EQ(second.aborted, 2);
  EXPECT_FALSE(first.armed());
  EXPECT_FALSE(second.armed());
}

TEST_F(EventLoopTest, BackgroundReadersReadDuringAnyRun) {
  std::vector<std::string> journal;
  FakeReader reader(loop.io(), journal, "reader", 10ms);
  loop.add_background_reader(&reader);
  // A wait of someone else (a shell command, say) for 150 ms.
  TimerOp op(loop.io(), 150ms);
  EXPECT_EQ(loop.run(op.done, op.cancel(), {.deadline = in_seconds(5)}), Outcome::kDone);
  EXPECT_GE(reader.messages, 3);
  // Its last read was cancelled, or completed in the final drain (when it
  // fired with the operation): either way nothing is left pending.
  EXPECT_FALSE(reader.armed());
  EXPECT_LE(reader.aborted, 1);
  int seen = reader.messages;
  // Between runs nothing is read.
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(reader.messages, seen);
}
