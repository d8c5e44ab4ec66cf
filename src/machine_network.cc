// Machine: ports and links, checked in the guest or set on QEMU's monitor.
#include <fmt/format.h>

#include "test_driver/machine.h"
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
bool Machine::port_is_open(int port, const std::string& addr, Clock::time_point deadline) {
  if (!is_loopback(addr)) return execute(fmt::format("nc -z {} {}", shell_quote(addr), port)).first == 0;
  if (!bash_has_dev_tcp_) {
    auto [status, out] = probe(
        "m=$( { : </dev/tcp/127.0.0.1/1; } 2>&1 ) || true; [[ $m != *'No such file or directory'* ]]", deadline);
    bash_has_dev_tcp_ = status == 0;
  }
  std::string command = *bash_has_dev_tcp_ ? fmt::format(": </dev/tcp/{}/{} 2>/dev/null", shell_quote(addr), port)
                                           : fmt::format("nc -z {} {}", shell_quote(addr), port);
  return probe(command, deadline).first == 0;
}

void Machine::wait_for_open_port(int port, const std::string& addr, double timeout) {
  auto nest = nested(fmt::format("waiting for TCP port {} on {}", port, addr));
  auto deadline = host_deadline(timeout);
  retry([&](bool) { return port_is_open(port, addr, deadline); }, timeout);
}

void Machine::wait_for_closed_port(int port, const std::string& addr, double timeout) {
  // The reference forgot to format this message ("TCP port {} to be closed").
  auto nest = nested(fmt::format("waiting for TCP port {} on {} to be closed", port, addr));
  auto deadline = host_deadline(timeout);
  retry([&](bool) { return !port_is_open(port, addr, deadline); }, timeout);
}

void Machine::wait_for_open_unix_socket(const std::string& path, bool is_datagram, double timeout) {
  auto nest = nested(fmt::format("waiting for UNIX socket {}", path));
  std::string flags = is_datagram ? "-uU" : "-U";
  auto deadline = host_deadline(timeout);
  retry([&](bool) { return probe(fmt::format("nc -z {} {}", flags, shell_quote(path)), deadline).first == 0; }, timeout);
}

void Machine::forward_port(int host_port, int guest_port) {
  send_monitor_command(fmt::format("hostfwd_add tcp::{}-:{}", host_port, guest_port));
}

// eth1 (virtio-net-pci.1) is the first VLAN interface; eth0 stays up so the
// driver can still talk to the machine.
void Machine::block() {
  auto nest = nested("blocking the first VLAN interface (set_link virtio-net-pci.1 off)");
  qmp_command("set_link", Json::Object{{"name", "virtio-net-pci.1"}, {"up", false}});
}

void Machine::unblock() {
  auto nest = nested("unblocking the first VLAN interface (set_link virtio-net-pci.1 on)");
  qmp_command("set_link", Json::Object{{"name", "virtio-net-pci.1"}, {"up", true}});
}

}  // namespace td
