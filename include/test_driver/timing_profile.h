// Where a run's time went, from its record (run_record.h): per machine the
// time booting (start to the backdoor shell's greeting), in commands, in
// waits and how much of the waits was polling (the probes' commands; the rest
// is sleeping between them or waiting on an event), and the slowest steps
// with their line in the test script. Printed at the end of every run and
// shown in the HTML report.
#pragma once

#include <string>
#include <vector>

#include "test_driver/run_record.h"

namespace td {

struct TimingProfile {
  static constexpr int kSlowest = 10;

  struct MachineRow {
    std::string name;
    double boot = 0, commands = 0, waits = 0, polling = 0;
    int boots = 0, command_count = 0, wait_count = 0, probes = 0;
  };
  struct SlowStep {
    int step;  // index into the record's steps
    std::string name, machine;
    double seconds;
    int line;
  };

  double total = 0;
  std::vector<MachineRow> machines;
  std::vector<SlowStep> slowest;  // the slowest first

  static TimingProfile of(const RunRecord::Data& data);
  // Lines for the terminal; `script` names the test script's file.
  std::vector<std::string> to_lines(const std::string& script) const;
};

}  // namespace td
