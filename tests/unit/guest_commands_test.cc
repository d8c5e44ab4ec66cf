// The commands the driver builds for the guest's bash (guest_poll.h, and
// shell_protocol.h's guest_timeout_command), run by a real bash on a socket
// pair, as the guest's backdoor runs it.
#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio/local/stream_protocol.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
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
    // Named so that the shell and its forks (subshells) can be found in /proc.
    options.argv = {"bash", "--norc", "-c", "echo 'Spawning backdoor root shell...'; exec -a " + marker() + " bash --norc"};
    options.stdin_fd = theirs.get();
    options.capture_stdout = false;
    options.stdout_fd = theirs.get();
    options.capture_stderr_apart = true;
    bash = td::Process::spawn(options);
    session.wait_for_greeting(td::Duration(10), [](td::Duration) {});
    run("true");  // the greeting comes before the exec
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
  // What run_command sends for execute(command, timeout=seconds).
  td::ShellResult run_with_timeout(const std::string& command, double seconds) {
    return run_wrapped(td::guest_timeout_command(command, td::Duration(seconds)), seconds + 60);
  }

  static std::string marker() { return "td-guest-shell-" + std::to_string(::getpid()); }
  // The processes whose command line starts with `prefix`.
  static std::set<int> processes_named(const std::string& prefix) {
    std::set<int> found;
    for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
      std::string name = entry.path().filename().string();
      if (name.find_first_not_of("0123456789") != std::string::npos) continue;
      std::ifstream in(entry.path() / "cmdline");
      std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      if (cmdline.rfind(prefix, 0) == 0) found.insert(std::stoi(name));
    }
    return found;
  }
  // The shell's processes become `expected` within 5 s (a killed watchdog
  // takes a moment to go).
  static std::set<int> shell_processes_settle_to(const std::set<int>& expected) {
    std::set<int> now;
    for (int i = 0; i < 100; ++i) {
      now = processes_named(marker());
      if (now == expected) break;
      std::this_thread::sleep_for(50ms);
    }
    return now;
  }

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

// ---- guest_timeout_command: execute(cmd, timeout=N) ----

TEST_F(GuestCommandsTest, ACommandThatEndsInTimeKeepsItsStatusAndOutputAndLeavesNoProcess) {
  auto shell = processes_named(marker());
  ASSERT_EQ(shell.size(), 1u);
  Stopwatch watch;
  auto result = run_with_timeout("echo hi; echo err >&2; exit 3", 30);
  EXPECT_EQ(result.status, 3);
  EXPECT_EQ(result.output, "hi\n");
  EXPECT_LT(watch.seconds(), 20);  // not held until the timeout
  // The watchdog was killed, the command's subshell is gone.
  EXPECT_EQ(shell_processes_settle_to(shell), shell);
  EXPECT_EQ(run("echo next").output, "next\n");
}

TEST_F(GuestCommandsTest, ACommandPastItsTimeoutIsKilledWithItsChildrenAndExits124) {
  auto shell = processes_named(marker());
  std::string child = "td-timeout-child-" + std::to_string(::getpid());
  Stopwatch watch;
  auto result = run_with_timeout("(exec -a " + child + " sleep 30); echo never", 1);
  double took = watch.seconds();
  EXPECT_EQ(result.status, 124);
  EXPECT_EQ(result.output, "");
  EXPECT_GE(took, 1.0);
  EXPECT_LT(took, 20);
  EXPECT_TRUE(processes_named(child).empty());
  EXPECT_EQ(shell_processes_settle_to(shell), shell);
  EXPECT_EQ(run("echo next").output, "next\n");
}

TEST_F(GuestCommandsTest, ACommandThatIgnoresSigtermRunsOnAndStillExits124) {
  // As coreutils' timeout without --kill-after: SIGTERM, then wait.
  auto result = run_with_timeout("trap '' TERM; sleep 1.5; echo finished", 0.5);
  EXPECT_EQ(result.status, 124);
  EXPECT_EQ(result.output, "finished\n");
}

TEST_F(GuestCommandsTest, ATimedCommandRunsAsShDoesWithoutStrictOptionsAndReadsItsInput) {
  // sh -c: no errexit, nounset or pipefail.
  EXPECT_EQ(run_with_timeout("false; echo after-false", 30).output, "after-false\n");
  EXPECT_EQ(run_with_timeout("false | true", 30).status, 0);
  EXPECT_EQ(run_with_timeout("echo \"[$undefined_variable]\"", 30).output, "[]\n");
  // A quote or comment in the command cannot leave bash waiting for more.
  EXPECT_EQ(run_with_timeout("echo 'unbalanced", 30).status, 2);
  EXPECT_EQ(run_with_timeout("echo a # comment", 30).output, "a\n");
  // Its input follows the command line, as without a timeout.
  td::ShellCommand c;
  c.description = "head";
  c.line = td::shell_command_line(td::guest_timeout_command("head -c 5", td::Duration(30)), true, true) + "abcde";
  c.deadline = td::Deadline::after(td::Duration(60));
  auto result = session.run(c);
  EXPECT_EQ(result.status, 0);
  EXPECT_EQ(result.output, "abcde");
  EXPECT_EQ(run("echo next").output, "next\n");
}

TEST_F(GuestCommandsTest, ATimeoutWorksWhereNoPtyCanBeOpened) {
  // A guest without devpts: the watchdog's pause falls back to sleep.
  std::string command = td::guest_timeout_command("sleep 30", td::Duration(0.5));
  auto at = command.find("/dev/ptmx");
  ASSERT_NE(at, std::string::npos);
  command.replace(at, 9, "/nonexistent/ptmx");
  EXPECT_EQ(run_wrapped(command, 60).status, 124);
  EXPECT_EQ(run_wrapped(td::guest_timeout_command("exit 7", td::Duration(30)), 60).status, 7);
}
