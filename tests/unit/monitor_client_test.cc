#include "test_driver/monitor_client.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <boost/asio/local/stream_protocol.hpp>
#include <string>
#include <thread>

#include "channel_test_support.h"
#include "test_driver/errors.h"
#include "test_driver/interrupt.h"

using namespace std::chrono_literals;
using td::MonitorClient;
using td_test::Stopwatch;
using td_test::UniqueFd;

namespace {

const std::string kBanner = "QEMU 8.2.0 monitor - type 'help' for more information\r\n(qemu) ";

// QEMU's human monitor on the other end of a socket pair: the test writes
// what QEMU would print and reads what the client sent.
class MonitorClientTest : public ::testing::Test {
 protected:
  MonitorClientTest() {
    auto [ours, theirs] = td_test::socket_pair();
    monitor.socket().assign(boost::asio::local::stream_protocol(), ours.release());
    peer = std::move(theirs);
  }
  void qemu_prints(std::string_view text) { td_test::write_all(peer.get(), text); }

  td_test::InterruptReset interrupts_;
  td::EventLoop loop;
  td::PlainChannelOwner owner{"machine 'test'"};
  MonitorClient monitor{loop, owner};
  UniqueFd peer;
};

}  // namespace

TEST_F(MonitorClientTest, ReadReplyReturnsTheTextUpToAndIncludingThePrompt) {
  qemu_prints(kBanner);
  EXPECT_EQ(monitor.read_reply(MonitorClient::OnClose::kFail), kBanner);
}

TEST_F(MonitorClientTest, ReadReplyWaitsForTheWholePrompt) {
  std::thread qemu([&] {
    qemu_prints("QEMU 8.2.0 monitor\r\n(qe");
    std::this_thread::sleep_for(50ms);
    qemu_prints("mu) ");
  });
  Stopwatch watch;
  EXPECT_EQ(monitor.read_reply(MonitorClient::OnClose::kFail), "QEMU 8.2.0 monitor\r\n(qemu) ");
  EXPECT_GE(watch.seconds(), 0.04);
  qemu.join();
}

TEST_F(MonitorClientTest, APromptInsideTheTextDoesNotEndTheReply) {
  std::thread qemu([&] {
    qemu_prints("(qemu) is how it asks\r\n");
    std::this_thread::sleep_for(50ms);
    qemu_prints("(qemu) ");
  });
  EXPECT_EQ(monitor.read_reply(MonitorClient::OnClose::kFail), "(qemu) is how it asks\r\n(qemu) ");
  qemu.join();
}

TEST_F(MonitorClientTest, CommandWritesTheLineAndReturnsTheReply) {
  qemu_prints(kBanner);
  monitor.read_reply(MonitorClient::OnClose::kFail);
  std::thread qemu([&] {
    auto line = td_test::read_line(peer.get(), 5s);
    EXPECT_EQ(line, "info status");
    qemu_prints("VM status: running\r\n(qemu) ");
  });
  EXPECT_EQ(monitor.command("info status"), "VM status: running\r\n(qemu) ");
  qemu.join();
  // Nothing else was sent.
  EXPECT_EQ(td_test::read_for(peer.get(), 100, 20ms), "");
}

TEST_F(MonitorClientTest, ACommandWithANewlineIsRejectedUnsent) {
  try {
    monitor.send("info status\nquit");
    FAIL() << "no exception";
  } catch (const td::MachineError&) {
    FAIL() << "a caller's mistake, not the machine's";
  } catch (const td::Error& e) {
    EXPECT_STREQ(e.what(), "a monitor command must be one line, got \"info status\\nquit\"");
  }
  EXPECT_THROW(monitor.command("quit\n"), td::Error);
  EXPECT_EQ(td_test::read_for(peer.get(), 100, 20ms), "");
}

TEST_F(MonitorClientTest, InvalidUtf8IsReplaced) {
  qemu_prints("caf\xff\xc3\r\n(qemu) ");
  EXPECT_EQ(monitor.read_reply(MonitorClient::OnClose::kFail), "caf\xef\xbf\xbd\xef\xbf\xbd\r\n(qemu) ");
}

TEST_F(MonitorClientTest, ThePeerClosingFails) {
  qemu_prints("partial output");
  peer.reset();
  try {
    monitor.read_reply(MonitorClient::OnClose::kFail);
    FAIL() << "no exception";
  } catch (const td::MachineError& e) {
    EXPECT_STREQ(e.what(), "machine 'test': waiting for the monitor prompt: the monitor connection closed");
  }
}

TEST_F(MonitorClientTest, QuitIsAnsweredByTheConnectionClosing) {
  EXPECT_EQ(MonitorClient::on_close_for("quit"), MonitorClient::OnClose::kAnswer);
  EXPECT_EQ(MonitorClient::on_close_for("q"), MonitorClient::OnClose::kAnswer);
  EXPECT_EQ(MonitorClient::on_close_for("info status"), MonitorClient::OnClose::kFail);
  EXPECT_EQ(MonitorClient::on_close_for("quitter"), MonitorClient::OnClose::kFail);

  qemu_prints(kBanner);
  monitor.read_reply(MonitorClient::OnClose::kFail);
  // QEMU prints a little, then closes its end (it still reads ours).
  qemu_prints("bye");
  ASSERT_EQ(::shutdown(peer.get(), SHUT_WR), 0);
  Stopwatch watch;
  EXPECT_EQ(monitor.command("quit"), "bye");
  EXPECT_LT(watch.seconds(), 4.0);
  EXPECT_EQ(td_test::read_line(peer.get(), 1s), "quit");
}

TEST_F(MonitorClientTest, QuitWithNothingBeforeTheCloseReturnsNothing) {
  ASSERT_EQ(::shutdown(peer.get(), SHUT_WR), 0);
  EXPECT_EQ(monitor.command("q"), "");
}

TEST_F(MonitorClientTest, AnInterruptEndsTheWaitAndKeepsWhatArrived) {
  qemu_prints("VM status: ");
  td::interrupt::raise();
  Stopwatch watch;
  EXPECT_THROW(monitor.read_reply(MonitorClient::OnClose::kFail), td::Interrupted);
  EXPECT_LT(watch.seconds(), 2.0);
  td::interrupt::clear();
  qemu_prints("running\r\n(qemu) ");
  EXPECT_EQ(monitor.read_reply(MonitorClient::OnClose::kFail), "VM status: running\r\n(qemu) ");
}

TEST_F(MonitorClientTest, AnInterruptEndsTheWaitWhileALargeReplyStillArrives) {
  // More than one read's worth (16 kB) has arrived, the prompt only comes
  // later (here: in 2 s, to bound the test).
  qemu_prints(std::string(100000, 'x'));
  td_test::LateWriter prompt(peer.get(), "(qemu) ");
  td::interrupt::raise();
  Stopwatch watch;
  EXPECT_THROW(monitor.read_reply(MonitorClient::OnClose::kFail), td::Interrupted);
  EXPECT_LT(watch.seconds(), 1.0) << "the wait ended only when the prompt came (2 s)";
}

TEST_F(MonitorClientTest, TheReplyToAnInterruptedCommandIsNotTakenForTheNextOnes) {
  qemu_prints(kBanner);
  monitor.read_reply(MonitorClient::OnClose::kFail);
  td::interrupt::raise();
  EXPECT_THROW(monitor.command("info status"), td::Interrupted);
  td::interrupt::clear();
  EXPECT_EQ(td_test::read_line(peer.get(), 1s), "info status");
  // QEMU answers the interrupted command late, then the next one.
  std::thread qemu([&] {
    qemu_prints("VM status: running\r\n(qemu) ");
    auto line = td_test::read_line(peer.get(), 5s);
    EXPECT_EQ(line, "info name");
    qemu_prints("test\r\n(qemu) ");
  });
  EXPECT_EQ(monitor.command("info name"), "test\r\n(qemu) ");
  qemu.join();
}
