// The driver of one test run: the VLANs and machines of the test, the
// polling conditions in force, and the steps a test script calls on all
// machines at once. Running the script itself is the embedding's job
// (bindings/), which gives it this driver's symbols.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "test_driver/machine.h"
#include "test_driver/nspawn_machine.h"
#include "test_driver/polling_condition.h"
#include "test_driver/vlan.h"

namespace td {

// $TMPDIR, $TEMP or $TMP (else /tmp); throws td::Error when it does not
// exist (it is never created) or is not a writable directory.
std::filesystem::path get_tmp_dir();

class Driver {
 public:
  // Starts the VLANs and creates (does not start) one machine per start
  // script, named after the script: a container for run-NAME-nspawn, a
  // QEMU machine for any other.
  Driver(const std::vector<std::string>& start_scripts, const std::vector<int>& vlans, std::string tests,
         std::filesystem::path out_dir, bool keep_vm_state = false);
  // Same as cleanup().
  ~Driver();
  Driver(const Driver&) = delete;
  Driver& operator=(const Driver&) = delete;

  // Kills every machine and VLAN the driver started. Idempotent.
  void cleanup();

  using MachineList = std::vector<std::shared_ptr<BaseMachine>>;
  // What start_all, join_all and the end of the script do, on the machines
  // the script runtime holds (the driver's own, and any a script added).
  // Starts them in parallel.
  void start_machines(const MachineList& machines);
  void join_machines(const MachineList& machines);
  // After the script: `sync` on every machine that is up.
  void sync_machines(const MachineList& machines);
  // Kills each (cleanup() does the driver's own); logs what fails and goes on.
  void release_machines(const MachineList& machines);

  // The legacy create_machine({...}); `args` holds its string keys.
  std::shared_ptr<Machine> create_machine(const std::map<std::string, std::string>& args, bool keep_vm_state,
                                          bool allow_reboot);

  void serial_stdout_on();
  void serial_stdout_off();

  // Checks every polling condition that is due; throws PollingConditionFailed.
  void check_polling_conditions();
  void push_polling_condition(std::shared_ptr<PollingCondition> condition);
  void pop_polling_condition(const std::shared_ptr<PollingCondition>& condition);

  const std::string& tests() const { return tests_; }
  const std::filesystem::path& out_dir() const { return out_dir_; }
  const std::vector<std::shared_ptr<Machine>>& machines() const { return machines_; }
  const std::vector<std::shared_ptr<NspawnMachine>>& containers() const { return containers_; }
  const std::vector<std::shared_ptr<VLan>>& vlans() const { return vlans_; }
  const std::vector<std::shared_ptr<PollingCondition>>& polling_conditions() const { return polling_conditions_; }

 private:
  std::string tests_;
  std::filesystem::path out_dir_;
  std::vector<std::shared_ptr<VLan>> vlans_;
  std::vector<std::shared_ptr<Machine>> machines_;
  std::vector<std::shared_ptr<NspawnMachine>> containers_;
  std::vector<std::shared_ptr<Machine>> created_machines_;
  std::vector<std::shared_ptr<PollingCondition>> polling_conditions_;
  bool cleaned_up_ = false;
};

}  // namespace td
