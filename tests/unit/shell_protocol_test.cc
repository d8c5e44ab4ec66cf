#include "test_driver/shell_protocol.h"

#include "real_bash_session.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "test_driver/base64.h"

namespace {

// The reply the guest's bash sends for `output` and `status`.
std::string reply_for(const std::string& output, int status) {
  std::string frame;
  if (!output.empty()) {
    frame = fmt::format("{:02x}", static_cast<unsigned char>(output[0])) + td::base64_encode(output.substr(1));
  }
  return frame + " " + std::to_string(status) + "\n";
}

td::ShellReply parse_in_pieces(const std::string& line, size_t piece, bool has_status = true) {
  td::ShellReply reply(has_status);
  for (size_t i = 0; i < line.size() && !reply.complete(); i += piece) {
    size_t used = reply.feed(std::string_view(line).substr(i, piece));
    EXPECT_TRUE(used == std::min(piece, line.size() - i) || reply.complete());
  }
  return reply;
}

}  // namespace

TEST(ShellProtocol, CommandLineRunsTheCommandInASubshellWithStrictOptions) {
  std::string line = td::shell_command_line("eval $'true'", true, true);
  EXPECT_NE(line.find("shopt -s lastpipe; ( shopt -u lastpipe; set -euo pipefail; eval $'true' ) | __td_frame; "),
            std::string::npos)
      << line;
  EXPECT_NE(line.find("base64 --wrap 0"), std::string::npos);
  EXPECT_TRUE(line.ends_with("; echo \" ${PIPESTATUS[0]}\"\n")) << line;
  EXPECT_EQ(line.find('\n'), line.size() - 1);
}

TEST(ShellProtocol, CommandLineWithoutOutputOrStatus) {
  std::string line = td::shell_command_line("x", false, false);
  EXPECT_NE(line.find(") >/dev/null 2>&1 | "), std::string::npos) << line;
  EXPECT_TRUE(line.ends_with("; echo\n")) << line;
}

TEST(ShellProtocol, EmptyOutputIsAnEmptyFrame) {
  auto reply = parse_in_pieces(" 0\n", 100);
  ASSERT_TRUE(reply.complete());
  EXPECT_FALSE(reply.error());
  EXPECT_EQ(reply.take_output(), "");
  EXPECT_EQ(reply.status(), 0);
}

TEST(ShellProtocol, DecodesEveryByteValueInAnyPieces) {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  for (const std::string& output : {all, std::string("x"), std::string("\n"), std::string(1, '\0') + "ab",
                                    std::string(100000, 'y')}) {
    for (size_t piece : {1u, 2u, 3u, 7u, 4096u}) {
      auto reply = parse_in_pieces(reply_for(output, 3), piece);
      ASSERT_TRUE(reply.complete());
      EXPECT_FALSE(reply.error()) << *reply.error();
      EXPECT_EQ(reply.take_output(), output);
      EXPECT_EQ(reply.status(), 3);
    }
  }
}

TEST(ShellProtocol, StopsAtTheNewline) {
  td::ShellReply reply(true);
  std::string data = " 1\nnext";
  EXPECT_EQ(reply.feed(data), 3u);
  EXPECT_TRUE(reply.complete());
  EXPECT_EQ(reply.status(), 1);
}

TEST(ShellProtocol, ReplyWithoutStatus) {
  auto reply = parse_in_pieces("78\n", 1, false);
  ASSERT_TRUE(reply.complete());
  EXPECT_FALSE(reply.error());
  EXPECT_EQ(reply.take_output(), "x");
}

TEST(ShellProtocol, GarbageIsAnErrorThatNamesIt) {
  for (std::string line : {"hello world\n", "7\n", "78!!!! 0\n", "78eA 0\n"}) {
    auto reply = parse_in_pieces(line, 2);
    ASSERT_TRUE(reply.complete()) << line;
    ASSERT_TRUE(reply.error()) << line;
    EXPECT_NE(reply.error()->find("not the driver's output frame"), std::string::npos) << *reply.error();
  }
}

TEST(ShellProtocol, MissingOrBadStatusIsAnError) {
  for (std::string line : {"\n", "78\n", " x\n", " 12a\n", " \n"}) {
    auto reply = parse_in_pieces(line, 1);
    ASSERT_TRUE(reply.complete()) << line;
    ASSERT_TRUE(reply.error()) << line;
    EXPECT_NE(reply.error()->find("expected an exit status"), std::string::npos) << *reply.error();
  }
}

TEST(ShellProtocol, GarbageIsConsumedUpToItsNewline) {
  td::ShellReply reply(true);
  std::string data = "garbage garbage\n 0\n";
  EXPECT_EQ(reply.feed(data), 16u);
  EXPECT_TRUE(reply.error());
}

// ---- guest_timeout_command, run by a real bash (real_bash_session.h) ----

namespace {
using td_test::GuestCommandsTest;
using td_test::Stopwatch;
}  // namespace


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

namespace {

// The processes whose parent is this one, but for `except`, as "pid (comm) state; ".
std::pair<std::vector<int>, std::string> children_of_ours(int except) {
  std::vector<int> pids;
  std::string described;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(entry.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    int ppid = 0;
    char state = 0;
    std::istringstream(stat.substr(close + 1)) >> state >> ppid;
    int pid = std::stoi(name);
    if (ppid != ::getpid() || pid == except) continue;
    pids.push_back(pid);
    described += stat.substr(0, close + 3) + "; ";
  }
  return {pids, described};
}

}  // namespace

TEST_F(GuestCommandsTest, TheWatchdogIsReapedByTheCommandsSubshellNotLeftToInit) {
  // An orphan goes to the guest's init, and busybox init sleeps a second
  // after reaping one before it sees a poweroff. With this process as the
  // subreaper, an orphan of the shell's would show up as a child of ours.
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(run_with_timeout("true", 30).status, 0);
  auto [strays, described] = children_of_ours(bash->pid());
  ::prctl(PR_SET_CHILD_SUBREAPER, 0);
  for (int pid : strays) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
  EXPECT_TRUE(strays.empty()) << "left to the reaper: " << described;
}

TEST_F(GuestCommandsTest, TheWatchdogsSleepDiesWithIt) {
  // Without /dev/ptmx the watchdog pauses with `sleep`: the command's end
  // kills the watchdog's process group, so that sleep does not live on.
  std::string command = td::guest_timeout_command("exit 7", td::Duration(31.5));
  command.replace(command.find("/dev/ptmx"), 9, "/nonexistent/ptmx");
  EXPECT_EQ(run_wrapped(command, 60).status, 7);
  std::string sleep_cmdline = std::string("sleep\0", 6) + std::string("31.5\0", 5);
  EXPECT_TRUE(processes_settle_to(sleep_cmdline, {}).empty()) << "the watchdog's `sleep 31.5` outlived the command";
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
