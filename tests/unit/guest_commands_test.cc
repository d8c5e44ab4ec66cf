// The commands the driver builds for the guest's bash (guest_poll.h), run by
// a real bash on a socket pair, as the guest's backdoor runs it.
#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio/local/stream_protocol.hpp>
#include <filesystem>
#include <string>
#include <thread>

#include "channel_test_support.h"
#include "test_driver/errors.h"
#include "test_driver/guest_poll.h"
#include "test_driver/interrupt.h"
#include "test_driver/process.h"
#include "test_driver/shell_protocol.h"
#include "test_driver/shell_session.h"
#include "test_driver/shell_words.h"

using namespace std::chrono_literals;
using td_test::Stopwatch;

namespace {

class GuestCommandsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto [ours, theirs] = td_test::socket_pair();
    session.socket().assign(boost::asio::local::stream_protocol(), ours.release());
    td::Process::Options options;
    options.argv = {"bash", "--norc", "-c", "echo 'Spawning backdoor root shell...'; exec bash --norc"};
    options.stdin_fd = theirs.get();
    options.capture_stdout = false;
    options.stdout_fd = theirs.get();
    options.capture_stderr_apart = true;
    bash = td::Process::spawn(options);
    session.wait_for_greeting(td::Duration(10), [](td::Duration) {});
    dir = std::filesystem::temp_directory_path() / ("td-guest-commands-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
  }
  void TearDown() override { std::filesystem::remove_all(dir); }

  // What BaseMachine::run_command sends for `wrapped` (already bash).
  td::ShellResult run_wrapped(const std::string& wrapped, double host_seconds, std::string_view abandon_line = {}) {
    td::ShellCommand c;
    c.description = wrapped;
    c.line = td::shell_command_line(wrapped, true, true);
    c.deadline = td::Deadline::after(td::Duration(host_seconds));
    c.abandon_line = abandon_line;
    return session.run(c);
  }
  td::ShellResult poll(const std::string& condition, double within, double host_seconds) {
    return run_wrapped(td::guest_poll_command(condition, td::Duration(within)), host_seconds,
                       td::kGuestPollAbandonLine);
  }
  td::ShellResult run(const std::string& command, double host_seconds = 10) {
    return run_wrapped("eval " + td::bash_ansi_c_quote(command), host_seconds);
  }
  std::string file(const std::string& name) { return td::shell_quote((dir / name).string()); }

  td_test::InterruptReset interrupts_;
  td::EventLoop loop;
  td::PlainChannelOwner owner{"machine 'test'"};
  td::ShellSession session{loop, owner, "machine 'test'"};
  std::unique_ptr<td::Process> bash;
  std::filesystem::path dir;
};

}  // namespace

// ---- guest_poll_command ----

TEST_F(GuestCommandsTest, APollOfAConditionThatHoldsEndsAtOnce) {
  EXPECT_EQ(poll("true", 30, 60).status, 0);
  EXPECT_EQ(run("echo next").output, "next\n");
}

TEST_F(GuestCommandsTest, APollSeesAConditionTurnTrueWhileItWaits) {
  std::thread maker([&] {
    std::this_thread::sleep_for(300ms);
    std::filesystem::create_directories(dir / "late");
  });
  auto result = poll("test -e " + file("late"), 30, 60);
  maker.join();
  EXPECT_EQ(result.status, 0);
  EXPECT_TRUE(std::filesystem::exists(dir / "late"));
}

TEST_F(GuestCommandsTest, APollEndsWithItsOwnStatusWhenItsTimeIsUp) {
  Stopwatch watch;
  auto result = poll("test -e " + file("never"), 0.5, 60);
  EXPECT_EQ(result.status, td::kGuestPollTimedOut);
  EXPECT_GE(watch.seconds(), 0.5);
  EXPECT_EQ(run("echo next").output, "next\n");
}

TEST_F(GuestCommandsTest, APollsOwnAssignmentsPersistAcrossTries) {
  // The Unix socket wait raises the pause (p) from within its condition.
  std::thread maker([&] {
    std::this_thread::sleep_for(300ms);
    std::filesystem::create_directories(dir / "late");
  });
  auto result = poll("{ p=0.1; test -e " + file("late") + "; }", 30, 60);
  maker.join();
  EXPECT_EQ(result.status, 0);
}

TEST_F(GuestCommandsTest, AnInterruptedPollIsToldToStopSoTheNextCommandAnswers) {
  std::thread user([] {
    std::this_thread::sleep_for(100ms);
    td::interrupt::raise();
  });
  EXPECT_THROW(poll("test -e " + file("never"), 600, 700), td::Interrupted);
  user.join();
  td::interrupt::clear();
  EXPECT_TRUE(session.has_stale_command());
  // Without the abandon line the poll would hold the shell for 600 s; the
  // next command (bounded by 20 s) gets its answer.
  EXPECT_EQ(run("echo after", 20).output, "after\n");
  EXPECT_FALSE(session.has_stale_command());
  EXPECT_EQ(run("echo again").output, "again\n");
}

TEST_F(GuestCommandsTest, TheAbandonLineIsHarmlessWhenThePollHasEndedAlready) {
  std::thread user([] {
    std::this_thread::sleep_for(100ms);
    td::interrupt::raise();
  });
  // Interrupted while the (finished) poll's reply is being waited for: the
  // line then reaches the shell itself, as an empty command.
  EXPECT_THROW(run_wrapped("sleep 0.3; " + td::guest_poll_command("true", td::Duration(5)), 60,
                           td::kGuestPollAbandonLine),
               td::Interrupted);
  user.join();
  td::interrupt::clear();
  std::this_thread::sleep_for(400ms);
  EXPECT_EQ(run("echo after", 20).output, "after\n");
  EXPECT_EQ(run("echo again").output, "again\n");
}
