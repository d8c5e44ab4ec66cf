// A machine under test: one QEMU process and the three channels the driver
// has to it. The human monitor (a Unix socket QEMU connects to), the root
// shell of the guest's backdoor on a virtio console (another Unix socket),
// and the serial console (QEMU's stdout), read line by line into the log.
//
// Lifecycle, explicit as in QEMU's own qemu.machine: start() launches QEMU
// and accepts its sockets, connect() waits for the backdoor shell,
// shutdown()/crash()/wait_for_shutdown() end it, release() kills it. Every
// wait has a deadline, sees QEMU exiting, and can be interrupted.
#pragma once

#include <condition_variable>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "test_driver/logger.h"
#include "test_driver/process.h"
#include "test_driver/start_command.h"

namespace td {

class Machine {
 public:
  using Clock = std::chrono::steady_clock;
  using Callback = std::function<void()>;

  struct Options {
    std::filesystem::path out_dir;
    std::filesystem::path tmp_dir;
    std::shared_ptr<StartCommand> start_command;
    std::string name = "machine";
    bool keep_vm_state = false;
    bool allow_reboot = false;
    std::vector<Callback> callbacks;
  };

  // Creates the shared and state directories (mode 0700); wipes an old
  // state directory unless keep_vm_state.
  explicit Machine(Options options);
  // Kills QEMU if it still runs.
  ~Machine();
  Machine(const Machine&) = delete;
  Machine& operator=(const Machine&) = delete;

  // --- lifecycle
  void start();
  void connect();
  bool is_up() const { return booted_ && connected_; }
  // "poweroff" in the guest, then wait_for_shutdown().
  void shutdown();
  // "quit" on the monitor, then wait_for_shutdown().
  void crash();
  // Waits until QEMU has exited (no deadline when timeout is nullopt).
  void wait_for_shutdown(std::optional<double> timeout = std::nullopt);
  // Kills QEMU (SIGTERM, then SIGKILL) and closes its channels.
  void release();
  void cleanup_statedir();

  // --- the shell
  // Runs `command` in the guest's root shell; returns (status, output).
  // With check_return false the status is -1 and one round trip is saved.
  // `timeout` (seconds) wraps the command in coreutils' timeout.
  std::pair<int, std::string> execute(const std::string& command, bool check_return = true,
                                      std::optional<double> timeout = 900);
  std::string succeed(const std::vector<std::string>& commands, std::optional<double> timeout = std::nullopt);
  std::string fail(const std::vector<std::string>& commands, std::optional<double> timeout = std::nullopt);
  std::string wait_until_succeeds(const std::string& command, double timeout = 900);
  std::string wait_until_fails(const std::string& command, double timeout = 900);

  // --- the monitor
  std::string wait_for_monitor_prompt();
  std::string send_monitor_command(const std::string& command);

  // --- the serial console
  // All serial lines seen since the last start, joined with newlines.
  std::string console_log() const;

  // --- logging
  void log(const std::string& message);
  void log_serial(const std::string& message);
  std::unique_ptr<Logger::Nest> nested(const std::string& message, const LogAttributes& attributes = {});

  void run_callbacks();

  // --- attributes
  const std::string& name() const { return options_.name; }
  const std::filesystem::path& out_dir() const { return options_.out_dir; }
  const std::filesystem::path& tmp_dir() const { return options_.tmp_dir; }
  const std::filesystem::path& shared_dir() const { return shared_dir_; }
  const std::filesystem::path& state_dir() const { return state_dir_; }
  const std::filesystem::path& monitor_path() const { return monitor_path_; }
  const std::filesystem::path& shell_path() const { return shell_path_; }
  const std::shared_ptr<StartCommand>& start_command() const { return options_.start_command; }
  bool keep_vm_state() const { return options_.keep_vm_state; }
  bool allow_reboot() const { return options_.allow_reboot; }
  void set_allow_reboot(bool on) { options_.allow_reboot = on; }
  bool booted() const { return booted_; }
  bool connected() const { return connected_; }
  std::optional<pid_t> pid() const { return pid_; }
  std::vector<Callback>& callbacks() { return options_.callbacks; }

  // How long connect() waits for the backdoor shell (seconds); default 900,
  // or $TEST_DRIVER_CONNECT_TIMEOUT.
  void set_connect_timeout(double seconds) { connect_timeout_ = seconds; }

 private:
  struct Channels;
  class SerialReader;

  [[noreturn]] void fail_channel(const std::string& step, const std::string& reason);
  void accept_channels();
  std::string read_shell_line(std::optional<Clock::time_point> deadline, const std::string& step);
  std::string read_monitor_reply(bool expect_exit);
  void write_shell(const std::string& data, const std::string& step);
  void finish_shutdown();
  std::string recent_output() const;

  Options options_;
  std::filesystem::path shared_dir_;
  std::filesystem::path state_dir_;
  std::filesystem::path monitor_path_;
  std::filesystem::path shell_path_;
  double connect_timeout_ = 900;

  std::recursive_mutex mutex_;  // one operation on the channels at a time
  std::unique_ptr<Process> process_;
  std::unique_ptr<Channels> channels_;
  std::unique_ptr<SerialReader> serial_;
  bool booted_ = false;
  bool connected_ = false;
  std::optional<pid_t> pid_;
};

}  // namespace td
