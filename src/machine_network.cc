// Machine: host port forwarding and VLAN links, set through QEMU.
#include <fmt/format.h>

#include "test_driver/machine.h"

namespace td {

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
