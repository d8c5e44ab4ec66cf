// A real bash on a socket pair, as the guest's backdoor runs it, behind a
// ShellSession: the fixture of the unit tests of the commands the driver
// builds for the guest's bash (guest_poll.h, shell_protocol.h's
// guest_timeout_command).
#pragma once

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

namespace td_test {


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
  // The processes named `prefix` become `expected` within 5 s (a killed
  // process takes a moment to go).
  static std::set<int> processes_settle_to(const std::string& prefix, const std::set<int>& expected) {
    std::set<int> now;
    for (int i = 0; i < 100; ++i) {
      now = processes_named(prefix);
      if (now == expected) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return now;
  }
  // The shell's processes become `expected` within 5 s.
  static std::set<int> shell_processes_settle_to(const std::set<int>& expected) {
    return processes_settle_to(marker(), expected);
  }

  td_test::InterruptReset interrupts_;
  td::EventLoop loop;
  td::PlainChannelOwner owner{"machine 'test'"};
  td::ShellSession session{loop, owner, "machine 'test'"};
  std::unique_ptr<td::Process> bash;
  std::filesystem::path dir;
};


}  // namespace td_test
