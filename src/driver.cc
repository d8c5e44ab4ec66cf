#include "test_driver/driver.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdlib>
#include <set>
#include <thread>

#include "test_driver/errors.h"
#include "test_driver/logger.h"

namespace td {

std::filesystem::path get_tmp_dir() {
  std::filesystem::path dir = "/tmp";
  for (const char* var : {"TMPDIR", "TEMP", "TMP"}) {
    const char* value = std::getenv(var);
    if (value && *value) {
      dir = value;
      break;
    }
  }
  std::error_code ec;
  // Never created: a mistyped TMPDIR must not make a directory at the root.
  if (!std::filesystem::exists(dir, ec))
    throw Error(fmt::format("The directory defined by TMPDIR, TEMP or TMP: {} does not exist", dir.string()));
  if (!std::filesystem::is_directory(dir, ec))
    throw Error(fmt::format("The directory defined by TMPDIR, TEMP, TMP or CWD: {} is not a directory", dir.string()));
  if (::access(dir.c_str(), W_OK) != 0)
    throw Error(fmt::format("The directory defined by TMPDIR, TEMP, TMP, or CWD: {} is not writeable", dir.string()));
  return dir;
}

Driver::Driver(const std::vector<std::string>& start_scripts, const std::vector<int>& vlans, std::string tests,
               std::filesystem::path out_dir, bool keep_vm_state)
    : tests_(std::move(tests)), out_dir_(std::move(out_dir)) {
  std::filesystem::path tmp_dir = get_tmp_dir();
  try {
    {
      Logger::Nest nest(rootlog(), "start all VLans");
      for (int nr : vlans) vlans_.push_back(std::make_shared<VLan>(nr, tmp_dir));
    }
    std::set<std::string> names;
    for (const auto& script : start_scripts) {
      auto command = std::make_shared<NixStartScript>(script);
      bool container = NspawnMachine::is_container_script(script);
      std::string name = container ? NspawnMachine::name_from_script(script) : command->machine_name();
      // Any name, as upstream: the script runtime gives the test script a
      // Python identifier for it (test_driver.driver.pythonize_name).
      if (!names.insert(name).second)
        throw Error(fmt::format("two start scripts give the machine name '{}': machine names must be unique", name));
      if (container) {
        NspawnMachine::Options options;
        options.out_dir = out_dir_;
        options.tmp_dir = tmp_dir;
        options.start_script = script;
        options.name = name;
        options.keep_machine_state = keep_vm_state;
        options.callbacks.push_back([this] { check_polling_conditions(); });
        containers_.push_back(std::make_shared<NspawnMachine>(std::move(options)));
        continue;
      }
      Machine::Options options;
      options.out_dir = out_dir_;
      options.tmp_dir = tmp_dir;
      options.start_command = command;
      options.name = name;
      options.keep_vm_state = keep_vm_state;
      options.callbacks.push_back([this] { check_polling_conditions(); });
      machines_.push_back(std::make_shared<Machine>(std::move(options)));
    }
  } catch (...) {
    cleanup();
    throw;
  }
}

Driver::~Driver() {
  try {
    cleanup();
  } catch (...) {
  }
}

void Driver::cleanup() {
  if (cleaned_up_) return;
  cleaned_up_ = true;
  Logger::Nest nest(rootlog(), "cleanup");
  for (auto& machine : machines_) machine->release();
  for (auto& machine : created_machines_) machine->release();
  for (auto& machine : containers_) machine->release();
  for (auto& vlan : vlans_) vlan->stop();
}

void Driver::start_machines(const MachineList& machines) {
  Logger::Nest nest(rootlog(), "start all VMs");
  // In parallel: each start waits for its QEMU to connect its sockets.
  std::vector<std::exception_ptr> errors(machines.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < machines.size(); ++i)
    threads.emplace_back([&, i] {
      try {
        machines[i]->start();
      } catch (...) {
        errors[i] = std::current_exception();
      }
    });
  for (auto& t : threads) t.join();
  std::string failures;
  for (size_t i = 0; i < machines.size(); ++i) {
    if (!errors[i]) continue;
    try {
      std::rethrow_exception(errors[i]);
    } catch (const Interrupted&) {
      throw;
    } catch (const std::exception& e) {
      failures += fmt::format("\n  {}: {}", machines[i]->name(), e.what());
    }
  }
  if (!failures.empty()) throw Error("machines failed to start:" + failures);
}

void Driver::join_machines(const MachineList& machines) {
  Logger::Nest nest(rootlog(), "wait for all VMs to finish");
  for (auto& machine : machines) machine->wait_for_shutdown();
}

void Driver::sync_machines(const MachineList& machines) {
  for (auto& machine : machines)
    if (machine->is_up()) machine->execute("sync");
}

void Driver::release_machines(const MachineList& machines) {
  for (auto& machine : machines) {
    try {
      machine->release();
    } catch (const std::exception& e) {
      rootlog().error(fmt::format("Error during cleanup of {}: {}", machine->name(), e.what()));
    }
  }
}

std::shared_ptr<Machine> Driver::create_machine(const std::map<std::string, std::string>& args, bool keep_vm_state,
                                                bool allow_reboot) {
  rootlog().warning("Using legacy create_machine(), please instantiate the Machine class directly, instead");
  auto get = [&](const char* key) -> std::optional<std::string> {
    auto it = args.find(key);
    if (it == args.end() || it->second.empty()) return std::nullopt;
    return it->second;
  };
  Machine::Options options;
  options.tmp_dir = get_tmp_dir();
  options.out_dir = out_dir_;
  options.keep_vm_state = keep_vm_state;
  options.allow_reboot = allow_reboot;
  if (auto start = get("startCommand")) {
    auto command = std::make_shared<NixStartScript>(*start);
    options.name = get("name").value_or(command->machine_name());
    options.start_command = command;
  } else {
    rootlog().warning(
        "Using legacy create_startcommand(), please use proper nix test vm instrumentation, instead to generate the "
        "appropriate nixos test vm qemu startup script");
    LegacyStartCommand::Options legacy;
    legacy.net_backend_args = get("netBackendArgs");
    legacy.net_frontend_args = get("netFrontendArgs");
    legacy.hda_path = get("hda");
    legacy.hda_interface = get("hdaInterface").value_or("");
    legacy.cdrom = get("cdrom");
    legacy.usb = get("usb");
    legacy.bios = get("bios");
    legacy.qemu_binary = get("qemuBinary");
    legacy.qemu_flags = get("qemuFlags");
    options.start_command = std::make_shared<LegacyStartCommand>(legacy);
    options.name = get("name").value_or("machine");
  }
  auto machine = std::make_shared<Machine>(std::move(options));
  created_machines_.push_back(machine);  // not a test symbol, as on the reference, but cleaned up
  return machine;
}

void Driver::serial_stdout_on() { rootlog().set_print_serial(true); }
void Driver::serial_stdout_off() { rootlog().set_print_serial(false); }

void Driver::check_polling_conditions() {
  for (auto& condition : polling_conditions_) condition->maybe_raise();
}

void Driver::push_polling_condition(std::shared_ptr<PollingCondition> condition) {
  polling_conditions_.push_back(std::move(condition));
}

void Driver::pop_polling_condition(const std::shared_ptr<PollingCondition>& condition) {
  if (polling_conditions_.empty() || polling_conditions_.back() != condition)
    throw Error("polling conditions must be left in the reverse order they were entered");
  polling_conditions_.pop_back();
}

}  // namespace td
