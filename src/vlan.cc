#include "test_driver/vlan.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <pty.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>

#include "test_driver/errors.h"
#include "test_driver/logger.h"
#include "test_driver/state_dir_lock.h"

namespace td {
namespace {

// Reads what `fd` has until a newline arrives or the deadline passes.
std::string read_line_until(int fd, std::chrono::steady_clock::time_point deadline) {
  std::string out;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return out;
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r <= 0) continue;
    char buffer[512];
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n <= 0) return out;
    out.append(buffer, static_cast<size_t>(n));
    if (out.find('\n') != std::string::npos) return out;
  }
}

}  // namespace

VLan::VLan(int nr, const std::filesystem::path& tmp_dir) : nr_(nr), socket_dir_(tmp_dir / fmt::format("vde{}.ctl", nr)) {
  ::setenv(fmt::format("QEMU_VDE_SOCKET_{}", nr).c_str(), socket_dir_.c_str(), 1);
  rootlog().info("start vlan");
  make_private_dir(socket_dir_, "VLAN directory");
  lock_ = lock_state_dir(socket_dir_, "VLAN directory");

  // vde_switch reads commands from a terminal; it gets a pty of its own.
  int slave = -1;
  if (::openpty(&pty_master_, &slave, nullptr, nullptr, nullptr) != 0)
    throw Error(fmt::format("cannot start vde_switch for VLAN {}: openpty: {}", nr, std::strerror(errno)));
  ::fcntl(pty_master_, F_SETFD, FD_CLOEXEC);
  ::fcntl(slave, F_SETFD, FD_CLOEXEC);
  Process::Options options;
  options.argv = {"vde_switch", "-s", socket_dir_.string(), "--dirmode", "0700"};
  options.stdin_fd = slave;
  try {
    process_ = Process::spawn(options);
  } catch (const Error& e) {
    ::close(slave);
    ::close(pty_master_);
    throw Error(fmt::format("cannot start vde_switch for VLAN {} ({}); is vde2 installed?", nr, e.what()));
  }
  ::close(slave);
  pid_ = process_->pid();

  const char version[] = "version\n";
  ssize_t ignored = ::write(pty_master_, version, sizeof version - 1);
  (void)ignored;
  std::string output = read_line_until(process_->output_fd(), std::chrono::steady_clock::now() + std::chrono::seconds(10));
  if (!std::filesystem::exists(socket_dir_ / "ctl")) {
    process_->terminate(std::chrono::seconds(1));
    ::close(pty_master_);
    pty_master_ = -1;
    throw Error(fmt::format("cannot start vde_switch for VLAN {}: no control socket in {} ({}); its output: {}", nr,
                            socket_dir_.string(), process_->describe_status(), output));
  }
  rootlog().info(fmt::format("running vlan (pid {})", pid_));
}

VLan::~VLan() { stop(); }

void VLan::stop() {
  if (!process_) return;
  rootlog().info(fmt::format("kill vlan (pid {})", pid_));
  if (pty_master_ >= 0) ::close(pty_master_);
  pty_master_ = -1;
  process_->terminate(std::chrono::seconds(2));
  process_.reset();
  // vde_switch leaves the directory to us: it holds the lock file.
  std::error_code ec;
  std::filesystem::remove(socket_dir_ / kStateDirLockFile, ec);
  lock_.reset();
  std::filesystem::remove(socket_dir_, ec);
}

}  // namespace td
