#include "test_driver/shell_session.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <boost/asio/local/stream_protocol.hpp>
#include <string>
#include <thread>

#include "channel_test_support.h"
#include "test_driver/base64.h"
#include "test_driver/errors.h"
#include "test_driver/interrupt.h"
#include "test_driver/process.h"
#include "test_driver/shell_protocol.h"
#include "test_driver/shell_words.h"
#include "test_driver/utf8.h"

using namespace std::chrono_literals;
using td_test::Stopwatch;
using td_test::UniqueFd;

namespace {

td::Deadline in_seconds(double seconds) { return td::Deadline::after(td::Duration(seconds)); }

// The command line BaseMachine::run_command sends for `command` (no guest
// timeout), then the command's input.
td::ShellCommand command_for(const std::string& command, td::Deadline deadline, const std::string& input = "",
                             bool check_output = true, bool check_return = true) {
  td::ShellCommand c;
  c.description = command;
  c.line = td::shell_command_line("eval " + td::bash_ansi_c_quote(command), check_output, check_return) + input;
  c.has_status = check_return;
  c.deadline = deadline;
  return c;
}

// A bash command that prints exactly `bytes`.
std::string printf_command(std::string_view bytes) {
  std::string format;
  for (char c : bytes) format += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
  return "printf '" + format + "'";
}

// Byte `b`, followed by the continuation bytes that make it a whole
// character when it can start one: the output is decoded to valid UTF-8, so
// only then is the byte itself visible in the result.
std::string first_byte_and_rest(int b) {
  std::string s(1, static_cast<char>(b));
  auto add = [&](std::initializer_list<int> more) {
    for (int m : more) s += static_cast<char>(m);
  };
  if (b >= 0xC2 && b <= 0xDF) add({0x80});
  else if (b == 0xE0) add({0xA0, 0x80});
  else if (b >= 0xE1 && b <= 0xEF) add({0x80, 0x80});
  else if (b == 0xF0) add({0x90, 0x80, 0x80});
  else if (b >= 0xF1 && b <= 0xF4) add({0x80, 0x80, 0x80});
  return s;
}

const std::string kGreetingLine = std::string(td::ShellSession::kGreeting) + "\n";

class ShellSessionTest : public ::testing::Test {
 protected:
  // A real bash on the other end of a socket pair, as the guest's backdoor
  // runs it: `prelude` (its greeting) first, then a bash reading commands
  // from the socket; its stderr goes elsewhere, as on the guest.
  void start_bash(const std::string& prelude = "echo 'Spawning backdoor root shell...'") {
    auto [ours, theirs] = td_test::socket_pair();
    session.socket().assign(boost::asio::local::stream_protocol(), ours.release());
    td::Process::Options options;
    options.argv = {"bash", "--norc", "-c", prelude + "; exec bash --norc"};
    options.stdin_fd = theirs.get();
    options.capture_stdout = false;
    options.stdout_fd = theirs.get();
    options.capture_stderr_apart = true;
    bash = td::Process::spawn(options);
  }
  void start_bash_and_connect() {
    start_bash();
    session.wait_for_greeting(td::Duration(10), [](td::Duration) {});
  }
  // The test plays the guest: returns the peer's end of the socket.
  UniqueFd raw_peer() {
    auto [ours, theirs] = td_test::socket_pair();
    session.socket().assign(boost::asio::local::stream_protocol(), ours.release());
    return std::move(theirs);
  }

  td::ShellResult run(const std::string& command, double timeout = 10) {
    return session.run(command_for(command, in_seconds(timeout)));
  }

  td_test::InterruptReset interrupts_;
  td::EventLoop loop;
  td::PlainChannelOwner owner{"machine 'test'"};
  td::ShellSession session{loop, owner, "machine 'test'"};
  std::unique_ptr<td::Process> bash;  // killed first, with its children
};

}  // namespace

// ---- The greeting ----

TEST_F(ShellSessionTest, GreetingAfterNoiseLines) {
  start_bash("echo 'connecting to host...'; echo '[  OK  ] Reached target Multi-User System.'; "
             "echo 'Spawning backdoor root shell...'");
  int notes = 0;
  session.wait_for_greeting(td::Duration(10), [&](td::Duration) { ++notes; });
  EXPECT_EQ(notes, 0);
  // Nothing of the noise is left to be taken for the reply.
  auto result = run("echo hi");
  EXPECT_EQ(result.status, 0);
  EXPECT_EQ(result.output, "hi\n");
}

TEST_F(ShellSessionTest, NoiseLinesAreSkippedButNotWhatFollowsTheGreeting) {
  auto peer = raw_peer();
  // All in one piece: what follows the greeting is the first reply.
  td_test::write_all(peer.get(), "noise\n[ 1.0 ] more noise\n" + kGreetingLine + "68aQ== 4\n");
  session.wait_for_greeting(td::Duration(5), [](td::Duration) {});
  auto result = session.run(command_for("anything", in_seconds(5)));
  EXPECT_EQ(result.status, 4);
  EXPECT_EQ(result.output, "hi");
}

TEST_F(ShellSessionTest, AnEmptyLineCountsAsTheGreeting) {
  start_bash("echo noise; echo");  // older guests
  session.wait_for_greeting(td::Duration(10), [](td::Duration) {});
  EXPECT_EQ(run("echo hi").output, "hi\n");
}

TEST_F(ShellSessionTest, AnEmptyLineWithACarriageReturnCountsAsTheGreeting) {
  auto peer = raw_peer();
  td_test::write_all(peer.get(), "noise\r\n\r\n 0\n");
  session.wait_for_greeting(td::Duration(5), [](td::Duration) {});
  EXPECT_EQ(session.run(command_for("true", in_seconds(5))).status, 0);
}

TEST_F(ShellSessionTest, GreetingTimeoutNamesTheGreeting) {
  auto peer = raw_peer();
  td_test::write_all(peer.get(), "noise\nmore noise without a newline");
  Stopwatch watch;
  try {
    session.wait_for_greeting(td::Duration(0.2), [](td::Duration) {});
    FAIL() << "no exception";
  } catch (const td::MachineError& e) {
    EXPECT_STREQ(e.what(),
                 "machine 'test': waiting for the guest's backdoor shell: "
                 "no \"Spawning backdoor root shell...\" line within 0.2 seconds");
  }
  EXPECT_GE(watch.seconds(), 0.19);
  EXPECT_LT(watch.seconds(), 5.0);
}

TEST_F(ShellSessionTest, GreetingWaitFailsWhenThePeerCloses) {
  auto peer = raw_peer();
  td_test::write_all(peer.get(), "noise\n");
  peer.reset();
  try {
    session.wait_for_greeting(td::Duration(10), [](td::Duration) {});
    FAIL() << "no exception";
  } catch (const td::MachineError& e) {
    EXPECT_STREQ(e.what(), "machine 'test': waiting for the guest's backdoor shell: the shell connection closed");
  }
}

TEST_F(ShellSessionTest, GreetingWaitFailsWhenBashExitsWithoutIt) {
  auto [ours, theirs] = td_test::socket_pair();
  session.socket().assign(boost::asio::local::stream_protocol(), ours.release());
  td::Process::Options options;
  options.argv = {"bash", "--norc", "-c", "echo 'connecting to host...'; exit 1"};
  options.stdin_fd = theirs.get();
  options.capture_stdout = false;
  options.stdout_fd = theirs.get();
  bash = td::Process::spawn(options);
  theirs.reset();
  EXPECT_THROW(session.wait_for_greeting(td::Duration(10), [](td::Duration) {}), td::MachineError);
}

TEST_F(ShellSessionTest, AStopFlagEndsTheGreetingWait) {
  auto peer = raw_peer();
  bool panicked = true;
  session.stop_when(&panicked, "the guest panicked");
  try {
    session.wait_for_greeting(td::Duration(10), [](td::Duration) {});
    FAIL() << "no exception";
  } catch (const td::MachineError& e) {
    EXPECT_STREQ(e.what(), "machine 'test': waiting for the guest's backdoor shell: the guest panicked");
  }
}

// ---- Commands: framing of output and status ----

TEST_F(ShellSessionTest, OutputAndStatusAreFramed) {
  start_bash_and_connect();
  auto result = run("echo hi; exit 3");
  EXPECT_EQ(result.status, 3);
  EXPECT_EQ(result.output, "hi\n");
  result = run("true");
  EXPECT_EQ(result.status, 0);
  EXPECT_EQ(result.output, "");
  result = run("printf x");  // one byte: no base64 at all
  EXPECT_EQ(result.status, 0);
  EXPECT_EQ(result.output, "x");
  result = run("false");
  EXPECT_EQ(result.status, 1);
  EXPECT_EQ(result.output, "");
  result = run("echo out; echo err >&2; exit 255");  // stderr is not the reply's
  EXPECT_EQ(result.status, 255);
  EXPECT_EQ(result.output, "out\n");
}

TEST_F(ShellSessionTest, EachCommandRunsInASubshellWithStrictOptions) {
  start_bash_and_connect();
  EXPECT_EQ(run("x=1; cd /; exit 4").status, 4);
  // The shell survived the `exit`, and kept neither the variable nor the directory.
  auto result = run("echo ${x-unset}; [ \"$PWD\" != / ] && echo elsewhere");
  EXPECT_EQ(result.status, 0);
  EXPECT_EQ(result.output, "unset\nelsewhere\n");
  // set -e: the command stops at the first failure.
  result = run("echo one; false; echo two");
  EXPECT_EQ(result.status, 1);
  EXPECT_EQ(result.output, "one\n");
  // set -u and pipefail.
  EXPECT_NE(run("echo $no_such_variable_anywhere").status, 0);
  EXPECT_EQ(run("false | true").status, 1);
}

TEST_F(ShellSessionTest, TheFrameReaderInTheShellLeavesCommandsAsInAnyBash) {
  // The reader runs in the backdoor shell itself (lastpipe), so the shell's
  // own state must not leak into the commands: their pipelines run each part
  // in a subshell, and the reader's locale and variable stay its own.
  start_bash_and_connect();
  EXPECT_EQ(run("echo piped | read v; echo \"[${v-}]\"").output, "[]\n");
  EXPECT_EQ(run("shopt -q lastpipe && echo on || echo off").output, "off\n");
  std::string before = run("echo \"${LC_ALL-unset} ${c-unset}\"").output;
  EXPECT_EQ(run("printf 'x\\xc3\\xa9'").output, "x\xc3\xa9");
  EXPECT_EQ(run("echo \"${LC_ALL-unset} ${c-unset}\"").output, before);
  EXPECT_EQ(before, "unset unset\n");
}

TEST_F(ShellSessionTest, CommandsWithoutOutputOrWithoutStatus) {
  start_bash_and_connect();
  auto result = session.run(command_for("echo hidden; exit 2", in_seconds(10), "", /*check_output=*/false));
  EXPECT_EQ(result.status, 2);
  EXPECT_EQ(result.output, "");
  result = session.run(command_for("echo shown; exit 2", in_seconds(10), "", true, /*check_return=*/false));
  EXPECT_EQ(result.status, -1);
  EXPECT_EQ(result.output, "shown\n");
  EXPECT_EQ(run("echo still in step").output, "still in step\n");
}

TEST_F(ShellSessionTest, EveryByteValueAsTheFirstByte) {
  start_bash_and_connect();
  for (int b = 0; b < 256; ++b) {
    std::string bytes = first_byte_and_rest(b) + "z";
    auto result = run(printf_command(bytes));
    ASSERT_EQ(result.status, 0) << "first byte " << b;
    ASSERT_EQ(result.output, td::to_valid_utf8(bytes)) << "first byte " << b;
  }
  // Those the result shows as themselves.
  EXPECT_EQ(run(printf_command(std::string(1, '\0') + "z")).output, std::string("\0z", 2));
  EXPECT_EQ(run(printf_command("\nz")).output, "\nz");
  EXPECT_EQ(run(printf_command("\xc3\xa9")).output, "\xc3\xa9");
  EXPECT_EQ(run(printf_command("\xf4\x8f\xbf\xbf")).output, "\xf4\x8f\xbf\xbf");
}

TEST_F(ShellSessionTest, EveryByteValueInsideTheOutput) {
  start_bash_and_connect();
  std::string bytes;
  for (int b = 0; b < 256; ++b) bytes += static_cast<char>(b);
  // Every continuation byte and two-byte lead, inside whole characters.
  for (int lead = 0xC2; lead <= 0xDF; ++lead)
    for (int cont = 0x80; cont <= 0xBF; ++cont) {
      bytes += static_cast<char>(lead);
      bytes += static_cast<char>(cont);
    }
  bytes += "\xe2\x82\xac\xf0\x9f\x98\x80 end\n";  // € 😀
  for (const std::string& output : {"x" + bytes, bytes, bytes + std::string(1, '\0')}) {
    auto result = run(printf_command(output));
    EXPECT_EQ(result.status, 0);
    EXPECT_EQ(result.output, td::to_valid_utf8(output));
  }
  EXPECT_EQ(run(printf_command(std::string("a\0b\0\0c\n\n", 8))).output, std::string("a\0b\0\0c\n\n", 8));
}

TEST_F(ShellSessionTest, LargeOutputArrivesWholeAndInOrder) {
  start_bash_and_connect();
  // ~2 MB: several of the session's reads and of the reply's pieces.
  auto result = run("seq 1 300000");
  std::string expected;
  for (int i = 1; i <= 300000; ++i) expected += std::to_string(i) + "\n";
  EXPECT_EQ(result.status, 0);
  ASSERT_EQ(result.output.size(), expected.size());
  EXPECT_TRUE(result.output == expected);  // not printed: 2 MB
}

TEST_F(ShellSessionTest, SixtyFourMegabytesOfOutputArriveWhole) {
  start_bash_and_connect();
  constexpr size_t kSize = 64 << 20;
  Stopwatch watch;
  auto result = run("head -c 67108864 /dev/zero | tr '\\0' a", 120);
  EXPECT_EQ(result.status, 0);
  ASSERT_EQ(result.output.size(), kSize);
  EXPECT_EQ(result.output.find_first_not_of('a'), std::string::npos);
  EXPECT_LT(watch.seconds(), 60.0);
  // The shell answers the next command at once.
  EXPECT_EQ(run("echo next").output, "next\n");
}

TEST_F(ShellSessionTest, InputFollowsTheCommandLine) {
  start_bash_and_connect();
  auto result = session.run(command_for("head -c 5", in_seconds(10), "hello"));
  EXPECT_EQ(result.status, 0);
  EXPECT_EQ(result.output, "hello");
  // Every byte, checked exactly through base64 in the guest.
  std::string input;
  for (int b = 0; b < 256; ++b) input += static_cast<char>(b);
  input += "\necho this is input, not a command\n";
  result = session.run(
      command_for(fmt::format("head -c {} | base64 --wrap 0", input.size()), in_seconds(10), input));
  EXPECT_EQ(result.status, 0);
  EXPECT_EQ(result.output, td::base64_encode(input));
  // A megabyte.
  std::string big(1 << 20, 'i');
  result = session.run(command_for(fmt::format("head -c {} | wc -c", big.size()), in_seconds(30), big));
  EXPECT_EQ(result.output, "1048576\n");
  // Nothing of it was taken for a command.
  EXPECT_EQ(run("echo after").output, "after\n");
}

// ---- Late replies, broken replies, interrupts ----

TEST_F(ShellSessionTest, ACommandPastItsDeadlineLeavesAStaleReplyThatTheNextCommandDrops) {
  start_bash_and_connect();
  EXPECT_FALSE(session.has_stale_command());
  Stopwatch watch;
  try {
    run("sleep 0.3; echo late", 0.05);
    FAIL() << "no exception";
  } catch (const td::MachineError& e) {
    EXPECT_STREQ(e.what(), "machine 'test': running `sleep 0.3; echo late`: no answer from the guest shell in time");
  }
  EXPECT_LT(watch.seconds(), 0.29);  // it did not wait for the reply
  EXPECT_TRUE(session.has_stale_command());
  // The late reply ("late") comes first and is dropped: the next command
  // gets its own.
  auto result = run("echo next");
  EXPECT_EQ(result.status, 0);
  EXPECT_EQ(result.output, "next\n");
  EXPECT_FALSE(session.has_stale_command());
  EXPECT_EQ(run("echo and next").output, "and next\n");
}

TEST_F(ShellSessionTest, AGarbageLineIsAMachineError) {
  auto peer = raw_peer();
  td_test::write_all(peer.get(), "garbage\n");
  auto command = command_for("echo hi", in_seconds(5));
  try {
    session.run(command);
    FAIL() << "no exception";
  } catch (const td::MachineError& e) {
    EXPECT_STREQ(e.what(),
                 "machine 'test': running `echo hi`: the guest shell answered with something that is not the "
                 "driver's output frame: garbage");
  }
  // The command line went out whole.
  EXPECT_EQ(td_test::read_for(peer.get(), command.line.size(), 2s), command.line);
  EXPECT_FALSE(session.has_stale_command());
}

TEST_F(ShellSessionTest, AReplyWithoutAStatusIsAMachineError) {
  auto peer = raw_peer();
  td_test::write_all(peer.get(), "78\n");
  try {
    session.run(command_for("printf x", in_seconds(5)));
    FAIL() << "no exception";
  } catch (const td::MachineError& e) {
    EXPECT_STREQ(e.what(), "machine 'test': running `printf x`: expected an exit status from the guest shell, got 78");
  }
}

TEST_F(ShellSessionTest, TheConnectionClosingDuringACommandIsAMachineError) {
  auto peer = raw_peer();
  td_test::write_all(peer.get(), "6869");  // part of a reply, then the end
  ::shutdown(peer.get(), SHUT_WR);
  try {
    session.run(command_for("echo hi", in_seconds(5)));
    FAIL() << "no exception";
  } catch (const td::MachineError& e) {
    EXPECT_STREQ(e.what(), "machine 'test': running `echo hi`: the guest shell's connection closed");
  }
}

TEST_F(ShellSessionTest, AStopFlagEndsACommandsWait) {
  start_bash_and_connect();
  bool panicked = true;
  session.stop_when(&panicked, "the guest panicked");
  Stopwatch watch;
  try {
    run("sleep 5");
    FAIL() << "no exception";
  } catch (const td::MachineError& e) {
    EXPECT_STREQ(e.what(), "machine 'test': running `sleep 5`: the guest panicked");
  }
  EXPECT_LT(watch.seconds(), 2.0);
}

TEST_F(ShellSessionTest, AnInterruptCutsTheWaitAndTheShellStaysUsable) {
  start_bash_and_connect();
  std::thread user([] {
    std::this_thread::sleep_for(50ms);
    td::interrupt::raise();
  });
  Stopwatch watch;
  EXPECT_THROW(run("sleep 0.4; echo interrupted one"), td::Interrupted);
  user.join();
  EXPECT_LT(watch.seconds(), 0.39);  // it did not wait for the command
  EXPECT_TRUE(session.has_stale_command());
  td::interrupt::clear();
  // The next command waits for the interrupted one, drops its reply, and
  // gets its own.
  auto result = run("echo after");
  EXPECT_GE(watch.seconds(), 0.35);
  EXPECT_EQ(result.status, 0);
  EXPECT_EQ(result.output, "after\n");
  EXPECT_FALSE(session.has_stale_command());
}

TEST_F(ShellSessionTest, WriteSendsRawBytesToTheShell) {
  start_bash_and_connect();
  session.write("exit 7\n", "powering off");
  ASSERT_TRUE(bash->wait(std::chrono::steady_clock::now() + 5s));
  EXPECT_EQ(bash->describe_status(), "exit code 7");
  EXPECT_THROW(run("true"), td::MachineError);
}

// ---- A deadline or an interrupt while output streams in ----
//
// The peer has written a megabyte of a reply (a command still printing)
// when the wait ends; the rest would come only 2 s later. The wait must end
// at once all the same. (A read that completed in the same pass of the
// reactor as the timer or the interrupt is handled in EventLoop::run's final
// drain; if the read handler then arms another read, the drain waits for it.)

namespace {

// A megabyte of the frame of a reply, without its end.
void write_a_streaming_reply(int peer) {
  int size = 4 << 20;
  ASSERT_EQ(::setsockopt(peer, SOL_SOCKET, SO_SNDBUF, &size, sizeof size), 0);
  td_test::write_all(peer, "78" + td::base64_encode(std::string(768 << 10, 'x')));
}

}  // namespace

TEST_F(ShellSessionTest, APassedDeadlineEndsTheWaitWhileTheReplyStillArrives) {
  auto peer = raw_peer();
  write_a_streaming_reply(peer.get());
  td_test::LateWriter rest(peer.get(), " 0\n");
  Stopwatch watch;
  EXPECT_THROW(session.run(command_for("yes", td::Deadline::at(td::Clock::now() - 1s))), td::MachineError);
  EXPECT_LT(watch.seconds(), 1.0) << "the wait ended only when the rest of the reply came (2 s)";
}

TEST_F(ShellSessionTest, AnInterruptEndsTheWaitWhileTheReplyStillArrives) {
  auto peer = raw_peer();
  write_a_streaming_reply(peer.get());
  td_test::LateWriter rest(peer.get(), " 0\n");
  td::interrupt::raise();
  Stopwatch watch;
  EXPECT_THROW(session.run(command_for("yes", in_seconds(30))), td::Interrupted);
  EXPECT_LT(watch.seconds(), 1.0) << "the wait ended only when the rest of the reply came (2 s)";
}

TEST_F(ShellSessionTest, RepliesStayInOrderWhenAWaitEndsAsItsReplyArrives) {
  auto peer = raw_peer();
  // The whole of a large reply, then the reply to the next command.
  write_a_streaming_reply(peer.get());
  td_test::write_all(peer.get(), " 0\n6eZXh0Cg== 0\n");
  // The deadline passed: the first command may fail or not, but its reply
  // (read by now, or not) must not be taken for the next command's.
  try {
    session.run(command_for("yes", td::Deadline::at(td::Clock::now() - 1s)));
  } catch (const td::MachineError&) {
  }
  try {
    auto result = session.run(command_for("echo next", in_seconds(1)));
    EXPECT_EQ(result.output, "next\n");
  } catch (const td::MachineError& e) {
    ADD_FAILURE() << "the next command's reply was dropped as the stale one: " << e.what();
  }
}
