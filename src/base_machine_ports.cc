// BaseMachine: TCP ports and Unix sockets, probed in the guest.
#include <fmt/format.h>

#include <cstdlib>
#include <string_view>

#include "test_driver/base_machine.h"
#include "test_driver/retry.h"
#include "test_driver/shell_words.h"

namespace td {

namespace {

// A connection to the guest itself is refused or accepted at once; one to
// another host can hang until TCP gives up (minutes), so it keeps the
// reference's guest-side `timeout`.
bool is_loopback(const std::string& addr) { return addr == "localhost" || addr == "127.0.0.1" || addr == "::1"; }

}  // namespace

// bash's /dev/tcp starts no process in the guest; nc -z (the reference's
// probe) costs ~60 ms under TCG. Bash built without network redirections
// takes /dev/tcp/… for a file name, which is what the first probe asks.
// TEST_DRIVER_GUEST_NO_DEV_TCP=1 skips the probe and says no: Debian's bash
// always has network redirections, so the tests of the nc fallback need it.
bool BaseMachine::bash_has_dev_tcp(Deadline deadline) {
  if (!bash_has_dev_tcp_ && std::getenv("TEST_DRIVER_GUEST_NO_DEV_TCP") != nullptr &&
      std::string_view(std::getenv("TEST_DRIVER_GUEST_NO_DEV_TCP")) == "1")
    bash_has_dev_tcp_ = false;
  if (!bash_has_dev_tcp_) {
    auto [status, out] = probe(
        "m=$( { : </dev/tcp/127.0.0.1/1; } 2>&1 ) || true; [[ $m != *'No such file or directory'* ]]", deadline);
    bash_has_dev_tcp_ = status == 0;
  }
  return *bash_has_dev_tcp_;
}

bool BaseMachine::port_is_open(int port, const std::string& addr, Deadline deadline) {
  if (!is_loopback(addr)) return execute(fmt::format("nc -z {} {}", shell_quote(addr), port)).first == 0;
  return probe(fmt::format("nc -z {} {}", shell_quote(addr), port), deadline).first == 0;
}

void BaseMachine::wait_for_port(int port, const std::string& addr, PortState want, Duration timeout) {
  auto start = Clock::now();
  auto wait_deadline = Deadline::after(timeout);
  auto deadline = host_deadline(wait_deadline);
  // A loopback port is polled in the guest with /dev/tcp; another host's
  // keeps the reference's `nc -z` per try (see is_loopback).
  if (is_loopback(addr) && bash_has_dev_tcp(deadline)) {
    std::string open = fmt::format("{{ : </dev/tcp/{}/{}; }} 2>/dev/null", shell_quote(addr), port);
    poll_in_guest(want == PortState::kOpen ? open : "! " + open, start, wait_deadline, timeout);
    return;
  }
  retry_until([&](bool) { return port_is_open(port, addr, deadline) == (want == PortState::kOpen); }, wait_deadline,
              timeout);
}

void BaseMachine::wait_for_open_port(int port, const std::string& addr, Duration timeout) {
  auto nest = nested(fmt::format("waiting for TCP port {} on {}", port, addr));
  wait_for_port(port, addr, PortState::kOpen, timeout);
}

void BaseMachine::wait_for_closed_port(int port, const std::string& addr, Duration timeout) {
  // The reference forgot to format this message ("TCP port {} to be closed").
  auto nest = nested(fmt::format("waiting for TCP port {} on {} to be closed", port, addr));
  wait_for_port(port, addr, PortState::kClosed, timeout);
}

void BaseMachine::wait_for_open_unix_socket(const std::string& path, bool is_datagram, Duration timeout) {
  auto nest = nested(fmt::format("waiting for UNIX socket {}", path));
  std::string flags = is_datagram ? "-uU" : "-U";
  auto start = Clock::now();
  // bash cannot connect to a Unix socket: `nc` runs only once the socket
  // exists (test -S), with a longer pause after each try (p, see guest_poll.h).
  std::string quoted = shell_quote(path);
  poll_in_guest(fmt::format("[[ -S {0} ]] && {{ p=0.1; nc -z {1} {0}; }}", quoted, flags), start,
                Deadline::after(timeout), timeout);
}

}  // namespace td
