// How a machine's QEMU is started: a command (a NixOS `run-<name>-vm` start
// script, or the legacy ad-hoc QEMU command line) to which the driver appends
// its own QEMU options (monitor, shell console, serial), run without a host
// shell as an argument vector.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace td {

class StartCommand {
 public:
  virtual ~StartCommand() = default;

  // The command the start command was made from, as given.
  virtual std::string base_command() const = 0;
  // The base command as words: a start script path is one word; a command
  // line is split like shlex.split.
  virtual std::vector<std::string> base_argv() const = 0;

  // The full argument vector: base command, then the driver's options
  // (-monitor, -chardev for the shell, -no-reboot unless allow_reboot,
  // virtio-serial console, virtio-rng, -serial stdio), then $QEMU_OPTS, then
  // -nographic when neither DISPLAY nor WAYLAND_DISPLAY is set.
  // With a qmp_socket_path, QEMU also serves QMP there (-qmp, first, so the
  // socket exists by the time QEMU connects to the monitor).
  std::vector<std::string> argv(const std::string& monitor_socket_path, const std::string& shell_socket_path,
                                bool allow_reboot = false, const std::string& qmp_socket_path = "") const;
  // The same, as one shell-quoted string for logs and for scripts that call
  // cmd() as on the reference.
  std::string cmd(const std::string& monitor_socket_path, const std::string& shell_socket_path,
                  bool allow_reboot = false) const;

  // The environment QEMU runs in: ours plus TMPDIR (the state directory),
  // SHARED_DIR and USE_TMPDIR=1.
  static std::vector<std::string> build_environment(const std::string& state_dir, const std::string& shared_dir);
};

// A start script from NixOS's qemu-vm module, `.../bin/run-<name>-vm`.
class NixStartScript : public StartCommand {
 public:
  explicit NixStartScript(std::string script);
  std::string base_command() const override { return script_; }
  std::vector<std::string> base_argv() const override;
  // <name> from `run-<name>-vm` at the end of the command, else "machine".
  std::string machine_name() const;

 private:
  std::string script_;
};

// The legacy ad-hoc QEMU command of create_machine({...}) without a
// startCommand.
class LegacyStartCommand : public StartCommand {
 public:
  struct Options {
    std::optional<std::string> net_backend_args;
    std::optional<std::string> net_frontend_args;
    std::optional<std::string> hda_path;
    std::string hda_interface;
    std::optional<std::string> cdrom;
    std::optional<std::string> usb;
    std::optional<std::string> bios;
    std::optional<std::string> qemu_binary;
    std::optional<std::string> qemu_flags;
  };
  explicit LegacyStartCommand(const Options& options);
  std::string base_command() const override;
  std::vector<std::string> base_argv() const override { return argv_; }

 private:
  std::vector<std::string> argv_;
};

}  // namespace td
