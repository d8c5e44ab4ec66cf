#include "test_driver/start_command.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <regex>

#include "test_driver/shell_words.h"

extern char** environ;

namespace td {

std::vector<std::string> StartCommand::argv(const std::string& monitor_socket_path,
                                            const std::string& shell_socket_path, bool allow_reboot,
                                            const std::string& qmp_socket_path) const {
  std::vector<std::string> args = base_argv();
  auto add = [&](std::initializer_list<const char*> words) { args.insert(args.end(), words.begin(), words.end()); };
  if (!qmp_socket_path.empty()) {
    args.push_back("-qmp");
    args.push_back("unix:" + qmp_socket_path + ",server=on,wait=off");
  }
  args.push_back("-monitor");
  args.push_back("unix:" + monitor_socket_path);
  args.push_back("-chardev");
  args.push_back("socket,id=shell,path=" + shell_socket_path);
  // The reference dropped the console devices too when allow_reboot was set
  // (which made the machine unreachable); only -no-reboot depends on it.
  if (!allow_reboot) add({"-no-reboot"});
  add({"-device", "virtio-serial", "-device", "virtconsole,chardev=shell", "-device", "virtio-rng-pci", "-serial",
       "stdio"});
  if (const char* opts = std::getenv("QEMU_OPTS")) {
    for (auto& word : split_command_line(opts)) args.push_back(std::move(word));
  }
  if (!std::getenv("DISPLAY") && !std::getenv("WAYLAND_DISPLAY")) add({"-nographic"});
  return args;
}

std::string StartCommand::cmd(const std::string& monitor_socket_path, const std::string& shell_socket_path,
                              bool allow_reboot) const {
  return shell_join(argv(monitor_socket_path, shell_socket_path, allow_reboot));
}

std::vector<std::string> StartCommand::build_environment(const std::string& state_dir,
                                                         const std::string& shared_dir) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string_view entry(*e);
    if (entry.starts_with("TMPDIR=") || entry.starts_with("SHARED_DIR=") || entry.starts_with("USE_TMPDIR=")) continue;
    env.emplace_back(entry);
  }
  env.push_back("TMPDIR=" + state_dir);
  env.push_back("SHARED_DIR=" + shared_dir);
  env.push_back("USE_TMPDIR=1");
  return env;
}

NixStartScript::NixStartScript(std::string script) : script_(std::move(script)) {}

std::vector<std::string> NixStartScript::base_argv() const {
  // A path to a script, even one with spaces, is one word; anything else is a
  // command line (create_machine({"startCommand": "qemu-kvm -m 512"})).
  std::error_code ec;
  // Absolute, as QEMU runs in the VM state directory.
  if (std::filesystem::exists(script_, ec)) return {std::filesystem::absolute(script_).lexically_normal().string()};
  return split_command_line(script_);
}

std::string NixStartScript::machine_name() const {
  static const std::regex pattern("run-(.+)-vm$");
  std::smatch match;
  if (std::regex_search(script_, match, pattern)) return match[1];
  return "machine";
}

LegacyStartCommand::LegacyStartCommand(const Options& o) {
  argv_ = o.qemu_binary ? split_command_line(*o.qemu_binary) : std::vector<std::string>{"qemu-kvm"};
  argv_.insert(argv_.end(), {"-m", "384"});
  std::string backend = "user,id=net0";
  std::string frontend = "virtio-net-pci,netdev=net0";
  if (o.net_backend_args) backend += "," + *o.net_backend_args;
  if (o.net_frontend_args) frontend += "," + *o.net_frontend_args;
  argv_.insert(argv_.end(), {"-netdev", backend, "-device", frontend});
  if (o.hda_path) {
    std::string path = std::filesystem::absolute(*o.hda_path).lexically_normal().string();
    if (o.hda_interface == "scsi") {
      argv_.insert(argv_.end(), {"-drive", "id=hda,file=" + path + ",werror=report,if=none", "-device", "scsi-hd,drive=hda"});
    } else {
      argv_.insert(argv_.end(), {"-drive", "file=" + path + ",if=" + o.hda_interface + ",werror=report"});
    }
  }
  if (o.cdrom) argv_.insert(argv_.end(), {"-cdrom", *o.cdrom});
  if (o.usb) {
    argv_.insert(argv_.end(), {"-device", "usb-ehci", "-drive", "id=usbdisk,file=" + *o.usb + ",if=none,readonly",
                               "-device", "usb-storage,drive=usbdisk"});
  }
  if (o.bios) argv_.insert(argv_.end(), {"-bios", *o.bios});
  if (o.qemu_flags) {
    for (auto& word : split_command_line(*o.qemu_flags)) argv_.push_back(std::move(word));
  }
}

std::string LegacyStartCommand::base_command() const { return shell_join(argv_); }

}  // namespace td
