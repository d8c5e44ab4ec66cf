#include "test_driver/qmp_client.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <semaphore>
#include <string>
#include <thread>
#include <vector>

#include "channel_test_support.h"
#include "test_driver/errors.h"
#include "test_driver/interrupt.h"

using namespace std::chrono_literals;
using Outcome = td::EventLoop::Outcome;
using td_test::Stopwatch;
using td_test::UniqueFd;

namespace {

constexpr const char* kGreeting = R"({"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 8}}, "capabilities": []}})";
constexpr const char* kEmptyReturn = R"({"return": {}})";
constexpr const char* kCapabilities = R"({"execute":"qmp_capabilities"})";

td::Deadline in_seconds(double seconds) { return td::Deadline::after(td::Duration(seconds)); }

// QEMU's side of a QMP socket: listens on a Unix socket in a private
// directory, accepts one connection and plays a script on a thread of its
// own. Every read of the script is bounded, so the thread always ends.
class QmpPeer {
 public:
  class Connection {
   public:
    Connection(int fd, std::binary_semaphore& go) : fd_(fd), go_(go) {}
    // The client may be gone (a failed test): that is no failure of its own.
    void send(const std::string& line) { td_test::write_all(fd_, line + "\n", /*may_fail=*/true); }
    // The next line the client sent (kept for received()); nullopt at its
    // end or after 5 s.
    std::optional<std::string> read() {
      auto line = td_test::read_line(fd_, 5s);
      if (line) received.push_back(*line);
      return line;
    }
    // Reads until the client closes the connection (at most 5 s).
    void read_until_closed() {
      while (read()) {
      }
    }
    // Waits (at most 5 s) for the test to call go().
    void wait_for_go() { EXPECT_TRUE(go_.try_acquire_for(5s)) << "the test never said go"; }

    std::vector<std::string> received;

   private:
    int fd_;
    std::binary_semaphore& go_;
  };
  using Script = std::function<void(Connection&)>;

  explicit QmpPeer(Script script) : path_(dir_.path() / "qmp") {
    listener_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path_.c_str(), sizeof address.sun_path - 1);
    EXPECT_EQ(::bind(listener_.get(), reinterpret_cast<sockaddr*>(&address), sizeof address), 0) << std::strerror(errno);
    EXPECT_EQ(::listen(listener_.get(), 1), 0);
    thread_ = std::thread([this, script = std::move(script)] {
      if (!td_test::readable_within(listener_.get(), 5s)) return;
      UniqueFd connection(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      Connection c(connection.get(), go_);
      script(c);
      received_ = std::move(c.received);
    });
  }
  ~QmpPeer() { join(); }

  const std::filesystem::path& path() const { return path_; }
  void go() { go_.release(); }
  // What the client sent, once the script has ended.
  const std::vector<std::string>& received() {
    join();
    return received_;
  }

 private:
  void join() {
    if (thread_.joinable()) thread_.join();
  }

  td_test::TempDir dir_;
  std::filesystem::path path_;
  UniqueFd listener_;
  std::binary_semaphore go_{0};
  std::vector<std::string> received_;
  std::thread thread_;
};

// Greets, answers qmp_capabilities.
void negotiate(QmpPeer::Connection& c) {
  c.send(kGreeting);
  c.read();
  c.send(kEmptyReturn);
}

// The driver's side: a loop and a client on it, destroyed together (the
// client stays registered with the loop).
struct Client {
  explicit Client(const QmpPeer& peer) {
    auto ec = qmp.connect(peer.path());
    EXPECT_FALSE(ec) << ec.message();
    qmp.on_event([this](const td::Json& event) { events_seen.push_back(event.string_at("event")); });
  }
  td_test::InterruptReset interrupts;
  td::EventLoop loop;
  td::PlainChannelOwner owner{"machine 'test'"};
  td::QmpClient qmp{loop, owner, "machine 'test'"};
  std::vector<std::string> events_seen;
};

auto any_event = [](const td::Json&) { return true; };
auto event_named(std::string name) {
  return [name](const td::Json& event) { return event.string_at("event") == name; };
}

}  // namespace

TEST(QmpClient, NegotiatesCapabilities) {
  QmpPeer peer([](QmpPeer::Connection& c) {
    negotiate(c);
    c.read_until_closed();
  });
  {
    Client client(peer);
    EXPECT_TRUE(client.qmp.is_open());
    client.qmp.negotiate();
    EXPECT_TRUE(client.qmp.is_open());
    EXPECT_TRUE(client.events_seen.empty());  // the greeting is no event
  }
  EXPECT_EQ(peer.received(), std::vector<std::string>{kCapabilities});
}

TEST(QmpClient, CommandReturnsTheReturnValue) {
  QmpPeer peer([](QmpPeer::Connection& c) {
    negotiate(c);
    c.read();
    c.send(R"({"return": {"status": "running", "singlestep": false, "running": true}})");
    c.read();
    c.send(R"({"return": "VM status: running\r\n"})");
    c.read_until_closed();
  });
  {
    Client client(peer);
    client.qmp.negotiate();
    td::Json status = client.qmp.command("query-status");
    EXPECT_EQ(status.string_at("status"), "running");
    ASSERT_TRUE(status.find("running"));
    EXPECT_TRUE(status.find("running")->as_bool());
    td::Json text = client.qmp.command("human-monitor-command", td::Json::Object{{"command-line", "info status"}});
    ASSERT_TRUE(text.is_string());
    EXPECT_EQ(text.as_string(), "VM status: running\r\n");
  }
  EXPECT_EQ(peer.received(),
            (std::vector<std::string>{kCapabilities, R"({"execute":"query-status"})",
                                      R"({"execute":"human-monitor-command","arguments":{"command-line":"info status"}})"}));
}

TEST(QmpClient, ANulInTheNameIsShownEscapedNotCut) {
  QmpPeer peer([](QmpPeer::Connection& c) {
    negotiate(c);
    c.read();
    c.send(R"({"error": {"class": "CommandNotFound", "desc": "The command quer\u0000y-status has not been found"}})");
    c.read_until_closed();
  });
  Client client(peer);
  client.qmp.negotiate();
  try {
    client.qmp.command(std::string("quer\0y-status", 13));
    FAIL() << "no exception";
  } catch (const td::QmpError& e) {
    EXPECT_STREQ(e.what(), "machine 'test': QMP command \"quer\\u0000y-status\" failed: CommandNotFound: \"The command "
                           "quer\\u0000y-status has not been found\"");
  }
  EXPECT_EQ(peer.received()[1], R"({"execute":"quer\u0000y-status"})");
}

TEST(QmpClient, AnErrorReplyIsAQmpErrorWithItsClassAndDescription) {
  QmpPeer peer([](QmpPeer::Connection& c) {
    negotiate(c);
    c.read();
    c.send(R"({"error": {"class": "DeviceNotFound", "desc": "Device 'nic9' not found"}})");
    c.read();
    c.send(R"({"return": {"name": "test"}})");
    c.read_until_closed();
  });
  Client client(peer);
  client.qmp.negotiate();
  try {
    client.qmp.command("device_del", td::Json::Object{{"id", "nic9"}});
    FAIL() << "no exception";
  } catch (const td::QmpError& e) {
    EXPECT_STREQ(e.what(), "machine 'test': QMP command device_del failed: DeviceNotFound: Device 'nic9' not found");
  }
  // The connection still works.
  EXPECT_EQ(client.qmp.command("query-name").string_at("name"), "test");
}

TEST(QmpClient, EventsBetweenRepliesAreQueuedInOrder) {
  QmpPeer peer([](QmpPeer::Connection& c) {
    negotiate(c);
    c.read();
    c.send(R"({"timestamp": {"seconds": 1, "microseconds": 2}, "event": "STOP"})");
    c.send(R"({"event": "RESUME"})");
    c.send(R"({"event": "STOP", "data": {"n": 3}})");
    c.send(R"({"return": {"status": "running"}})");
    c.read_until_closed();
  });
  Client client(peer);
  client.qmp.negotiate();
  EXPECT_EQ(client.qmp.command("query-status").string_at("status"), "running");
  // The handler saw each as it was read.
  EXPECT_EQ(client.events_seen, (std::vector<std::string>{"STOP", "RESUME", "STOP"}));
  // The first STOP is skipped, and consumed with the RESUME.
  auto resume = client.qmp.wait_for_event(event_named("RESUME"), in_seconds(1));
  ASSERT_TRUE(resume);
  EXPECT_EQ(resume->string_at("event"), "RESUME");
  auto stop = client.qmp.wait_for_event(any_event, in_seconds(1));
  ASSERT_TRUE(stop);
  EXPECT_EQ(stop->string_at("event"), "STOP");
  ASSERT_TRUE(stop->find("data"));
  EXPECT_EQ(stop->find("data")->find("n")->as_number(), 3);
  // None left: nullopt at the deadline.
  Stopwatch watch;
  EXPECT_EQ(client.qmp.wait_for_event(any_event, in_seconds(0.1)), std::nullopt);
  EXPECT_GE(watch.seconds(), 0.099);
  EXPECT_LT(watch.seconds(), 2.0);
  EXPECT_FALSE(client.qmp.panicked());
}

TEST(QmpClient, WaitForEventReadsEventsThatArriveWhileItWaits) {
  QmpPeer peer([](QmpPeer::Connection& c) {
    negotiate(c);
    c.wait_for_go();
    std::this_thread::sleep_for(50ms);
    c.send(R"({"event": "BLOCK_JOB_READY"})");
    c.send(R"({"event": "SHUTDOWN", "data": {"guest": true}})");
    c.read_until_closed();
  });
  Client client(peer);
  client.qmp.negotiate();
  peer.go();
  Stopwatch watch;
  auto shutdown = client.qmp.wait_for_event(event_named("SHUTDOWN"), in_seconds(5));
  ASSERT_TRUE(shutdown);
  EXPECT_TRUE(shutdown->find("data")->find("guest")->as_bool());
  EXPECT_LT(watch.seconds(), 4.0);
  EXPECT_EQ(client.events_seen, (std::vector<std::string>{"BLOCK_JOB_READY", "SHUTDOWN"}));
}

TEST(QmpClient, EventsAreReadDuringAnyWaitAndGuestPanickedRaisesPanicked) {
  QmpPeer peer([](QmpPeer::Connection& c) {
    negotiate(c);
    c.wait_for_go();
    c.send(R"({"event": "GUEST_PANICKED", "data": {"action": "pause"}})");
    c.send(R"({"event": "STOP"})");
    c.read_until_closed();
  });
  Client client(peer);
  client.qmp.negotiate();
  EXPECT_FALSE(client.qmp.panicked());
  peer.go();
  // Someone else's wait (a shell command, say) on the same loop, which the
  // panic ends.
  boost::asio::steady_timer other(client.loop.io(), 1h);
  bool done = false;
  other.async_wait([&](boost::system::error_code) { done = true; });
  Stopwatch watch;
  auto outcome = client.loop.run(done, [&] { other.cancel(); },
                                 {.deadline = in_seconds(5), .stop_flag = &client.qmp.panicked()});
  EXPECT_EQ(outcome, Outcome::kStopped);
  EXPECT_LT(watch.seconds(), 4.0);
  EXPECT_TRUE(client.qmp.panicked());
  ASSERT_FALSE(client.events_seen.empty());
  EXPECT_EQ(client.events_seen[0], "GUEST_PANICKED");
  // Queued all the same; and the flag stays raised.
  auto panic = client.qmp.wait_for_event(event_named("GUEST_PANICKED"), in_seconds(1));
  ASSERT_TRUE(panic);
  EXPECT_EQ(panic->find("data")->string_at("action"), "pause");
  EXPECT_TRUE(client.qmp.wait_for_event(event_named("STOP"), in_seconds(1)));
  EXPECT_TRUE(client.qmp.panicked());
}

TEST(QmpClient, TheConnectionClosingWhileAwaitingAReplyFailsViaTheOwner) {
  QmpPeer peer([](QmpPeer::Connection& c) {
    c.send(kGreeting);
    c.read();
    c.send(R"({"event": "SHUTDOWN"})");
  });  // and closes
  Client client(peer);
  try {
    client.qmp.negotiate();
    FAIL() << "no exception";
  } catch (const td::MachineError& e) {
    EXPECT_STREQ(e.what(), "machine 'test': QMP command qmp_capabilities: the QMP connection closed");
  }
  EXPECT_FALSE(client.qmp.is_open());
  // What came before the end is still there; then the end.
  auto event = client.qmp.wait_for_event(any_event, in_seconds(1));
  ASSERT_TRUE(event);
  EXPECT_EQ(event->string_at("event"), "SHUTDOWN");
  try {
    client.qmp.wait_for_event(any_event, in_seconds(1));
    FAIL() << "no exception";
  } catch (const td::MachineError& e) {
    EXPECT_STREQ(e.what(), "machine 'test': waiting for a QMP event: the QMP connection closed");
  }
}

TEST(QmpClient, QuitAnsweredByTheConnectionClosingReturnsNull) {
  QmpPeer peer([](QmpPeer::Connection& c) {
    negotiate(c);
    c.read();
  });  // and closes, as QEMU does
  {
    Client client(peer);
    client.qmp.negotiate();
    Stopwatch watch;
    td::Json reply = client.qmp.command("quit");
    EXPECT_TRUE(reply.is_null());
    EXPECT_LT(watch.seconds(), 4.0);
    EXPECT_FALSE(client.qmp.is_open());
  }
  EXPECT_EQ(peer.received(), (std::vector<std::string>{kCapabilities, R"({"execute":"quit"})"}));
}

TEST(QmpClient, QuitAnsweredByAReturnReturnsIt) {
  QmpPeer peer([](QmpPeer::Connection& c) {
    negotiate(c);
    c.read();
    c.send(kEmptyReturn);
  });
  Client client(peer);
  client.qmp.negotiate();
  td::Json reply = client.qmp.command("quit");
  EXPECT_TRUE(reply.is_object());
}

TEST(QmpClient, ConnectWhereNothingListensIsAnError) {
  td_test::TempDir dir;
  td::EventLoop loop;
  td::PlainChannelOwner owner("machine 'test'");
  td::QmpClient qmp(loop, owner, "machine 'test'");
  auto ec = qmp.connect(dir.path() / "no-such-socket");
  EXPECT_TRUE(ec);
  EXPECT_EQ(ec.value(), ENOENT) << ec.message();
  EXPECT_FALSE(qmp.is_open());

  // A socket file that nobody listens on any more.
  auto stale = dir.path() / "stale";
  {
    UniqueFd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, stale.c_str(), sizeof address.sun_path - 1);
    ASSERT_EQ(::bind(s.get(), reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  }
  ec = qmp.connect(stale);
  EXPECT_EQ(ec.value(), ECONNREFUSED) << ec.message();
  EXPECT_FALSE(qmp.is_open());
}

TEST(QmpClient, AnInterruptEndsTheWaitForAReply) {
  QmpPeer peer([](QmpPeer::Connection& c) {
    negotiate(c);
    c.read();
    c.read_until_closed();  // never answers
  });
  Client client(peer);
  client.qmp.negotiate();
  td::interrupt::raise();
  Stopwatch watch;
  EXPECT_THROW(client.qmp.command("query-status"), td::Interrupted);
  EXPECT_LT(watch.seconds(), 2.0);
  EXPECT_THROW(client.qmp.wait_for_event(any_event, in_seconds(5)), td::Interrupted);
  td::interrupt::clear();
}

TEST(QmpClient, TheReplyToAnInterruptedCommandIsNotTakenForTheNextOnes) {
  QmpPeer peer([](QmpPeer::Connection& c) {
    negotiate(c);
    c.read();  // query-status, interrupted
    c.wait_for_go();
    c.send(R"({"return": {"status": "running"}})");  // its late reply
    c.read();  // query-name
    c.send(R"({"return": {"name": "test"}})");
    c.read_until_closed();
  });
  Client client(peer);
  client.qmp.negotiate();
  td::interrupt::raise();
  EXPECT_THROW(client.qmp.command("query-status"), td::Interrupted);
  td::interrupt::clear();
  peer.go();
  td::Json reply = client.qmp.command("query-name");
  EXPECT_EQ(reply.string_at("name"), "test") << "got " << reply.dump();
}
