// A machine that systemd-nspawn runs: a container booted by its start
// script (run-NAME-nspawn, as NixOS writes them), reached through one
// persistent root shell started in the container's namespaces (as nsenter does).
// The shell speaks the same framing as a VM's backdoor shell, so a command
// costs one round trip, not a process tree per command. The container's
// console (/dev/console, where its journal goes) is the start script's
// output, logged as a VM's serial lines are.
//
// Lifecycle, as Machine's: start() runs the start script; connect() waits
// for the container's init and opens the shell; shutdown() powers off from
// inside; crash() kills the init; release() kills what is left. Every wait
// has a deadline and sees the start script exiting.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "test_driver/base_machine.h"

namespace td {

class Process;

class NspawnMachine : public BaseMachine {
 public:
  struct Options {
    std::filesystem::path out_dir;
    std::filesystem::path tmp_dir;
    std::string start_script;  // run-NAME-nspawn
    std::string name;          // "" means from the script's name
    bool keep_machine_state = false;
    std::vector<Callback> callbacks;
  };

  // The machine name in a start script's name (run-NAME-nspawn), or
  // "machine" when it has none.
  static std::string name_from_script(const std::string& script);
  // Whether the script's name marks a container (run-NAME-nspawn).
  static bool is_container_script(const std::string& script);

  // Creates the shared and state directories (mode 0700), locks the state
  // directory for the machine's life, and wipes an old one unless
  // keep_machine_state.
  explicit NspawnMachine(Options options);
  // Kills the container if it still runs.
  ~NspawnMachine() override;

  // --- lifecycle
  // Runs the start script; throws td::Error naming what is missing when
  // the driver is not root or systemd-nspawn is not installed.
  void start() override;
  void connect() override;
  // "poweroff" in the container, then wait_for_shutdown().
  void shutdown() override;
  // SIGKILL to the container's init, then wait_for_shutdown().
  void crash() override;
  void wait_for_shutdown(std::optional<Duration> timeout = std::nullopt) override;
  void release() override;
  bool booted() const override { return booted_; }
  bool connected() const override { return connected_; }
  void set_connected(bool connected) override;

  // --- attributes
  const std::string& start_script() const { return options_.start_script; }
  bool keep_machine_state() const { return options_.keep_machine_state; }
  // The root directory the start script is given (RUN_NSPAWN_ROOT_DIR).
  std::filesystem::path root_dir() const { return state_dir() / "root"; }
  // The start script's pid, while it runs.
  std::optional<pid_t> pid() const;
  // The container's init (its PID 1) as the host sees it, once connected.
  std::optional<pid_t> init_pid() const { return init_; }
  void set_connect_timeout(Duration timeout) { connect_timeout_ = timeout; }

 private:
  struct Channels;

  MachineError channel_error(const std::string& step, const std::string& reason) override;
  std::string recent_output() const override;
  ShellSession& session() override;
  SerialReader* console() const override { return console_.get(); }

  pid_t wait_for_init(Deadline deadline);
  void open_shell(pid_t init, Deadline deadline);
  void finish_shutdown();

  Options options_;
  Duration connect_timeout_ = kDefaultTimeout;
  std::unique_ptr<Process> script_;
  std::unique_ptr<Channels> channels_;
  std::unique_ptr<SerialReader> console_;
  std::optional<pid_t> init_;
  bool booted_ = false;
  bool connected_ = false;
  std::shared_ptr<void> state_lock_;
};

}  // namespace td
