// Machine: host port forwarding and VLAN links, set through QEMU.
#include <fmt/format.h>

#include <cctype>

#include "test_driver/errors.h"
#include "test_driver/machine.h"
#include "test_driver/monitor_client.h"

namespace td {

void Machine::forward_port(int host_port, int guest_port) {
  send_monitor_command(fmt::format("hostfwd_add tcp::{}-:{}", host_port, guest_port));
}

// eth1 (virtio-net-pci.1) is the first VLAN interface; eth0 stays up so the
// driver can still talk to the machine.
void Machine::block() {
  auto nest = nested("blocking the first VLAN interface (set_link virtio-net-pci.1 off)");
  set_first_vlan_link(LinkState::kDown);
}

void Machine::unblock() {
  auto nest = nested("unblocking the first VLAN interface (set_link virtio-net-pci.1 on)");
  set_first_vlan_link(LinkState::kUp);
}

// Through QMP, or the human monitor when the start command dropped -qmp
// (which answers an unknown device with a line of text instead of an error).
void Machine::set_first_vlan_link(LinkState state) {
  const bool up = state == LinkState::kUp;
  if (qmp_connected()) {
    qmp_command("set_link", Json::Object{{"name", "virtio-net-pci.1"}, {"up", up}});
    return;
  }
  std::string reply = send_monitor_command(fmt::format("set_link virtio-net-pci.1 {}", up ? "on" : "off"));
  // The reply starts with the monitor's echo of the command line (redrawn
  // as it was typed) and ends with the prompt; what is between is its output.
  auto echo_end = reply.find('\n');
  reply.erase(0, echo_end == std::string::npos ? reply.size() : echo_end + 1);
  if (reply.ends_with(MonitorClient::kPrompt)) reply.resize(reply.size() - MonitorClient::kPrompt.size());
  while (!reply.empty() && std::isspace(static_cast<unsigned char>(reply.back()))) reply.pop_back();
  if (!reply.empty()) throw MachineError(fmt::format("{}: set_link virtio-net-pci.1: {}", label(), reply));
}

}  // namespace td
