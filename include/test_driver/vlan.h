// A virtual LAN: one vde_switch whose control socket directory the start
// scripts find through $QEMU_VDE_SOCKET_<nr>. It lives as long as the
// object: the destructor stops the switch. The directory is locked for that
// time (state_dir_lock.h), so a second driver with the same TMPDIR and VLAN
// number fails at once instead of plugging its guests into this switch.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "test_driver/process.h"

namespace td {

class VLan {
 public:
  // Locks <tmp_dir>/vde<nr>.ctl, starts `vde_switch -s` on it and waits
  // (bounded) until it answers. Throws td::Error naming the other driver
  // when the directory is locked, or with vde_switch's output when it
  // cannot start.
  VLan(int nr, const std::filesystem::path& tmp_dir);
  ~VLan();
  VLan(const VLan&) = delete;
  VLan& operator=(const VLan&) = delete;

  int nr() const { return nr_; }
  const std::filesystem::path& socket_dir() const { return socket_dir_; }
  pid_t pid() const { return pid_; }
  // Stops the switch; idempotent.
  void stop();

 private:
  int nr_;
  std::filesystem::path socket_dir_;
  std::shared_ptr<void> lock_;
  std::unique_ptr<Process> process_;
  pid_t pid_ = -1;
  int pty_master_ = -1;
};

}  // namespace td
