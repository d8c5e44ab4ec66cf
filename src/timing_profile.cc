#include "test_driver/timing_profile.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>

namespace td {

namespace {

double step_seconds(const RunRecord::Step& step, double now) { return std::max(0.0, step.end.value_or(now) - step.start); }

// Whether a wait of the same machine encloses the step (its time is counted there).
bool inside_wait(const std::vector<RunRecord::Step>& steps, const RunRecord::Step& step) {
  for (int p = step.parent; p >= 0; p = steps[p].parent)
    if (steps[p].kind == StepKind::wait && steps[p].machine == step.machine) return true;
  return false;
}

// At most `bytes` bytes of `text`, cut at a character's start, "..." after a cut.
std::string shortened(const std::string& text, size_t bytes) {
  if (text.size() <= bytes) return text;
  size_t end = bytes - 3;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return text.substr(0, end) + "...";
}

}  // namespace

TimingProfile TimingProfile::of(const RunRecord::Data& data) {
  TimingProfile profile;
  profile.total = data.now;
  std::map<std::string, MachineRow> rows;
  for (const auto& [name, times] : data.machines) {
    MachineRow& row = rows[name];
    row.name = name;
    row.commands = times.command_seconds;
    row.polling = times.polling_seconds;
    row.command_count = times.commands;
    row.probes = times.probes;
    std::optional<double> started;
    for (const auto& [t, event] : times.events) {
      if (event == RunRecord::MachineEvent::started) {
        started = t;
      } else if (event == RunRecord::MachineEvent::connected && started) {
        row.boot += t - *started;
        ++row.boots;
        started.reset();
      } else if (event == RunRecord::MachineEvent::stopped) {
        started.reset();
      }
    }
  }
  for (const auto& step : data.steps) {
    if (step.kind != StepKind::wait || step.machine.empty() || inside_wait(data.steps, step)) continue;
    MachineRow& row = rows[step.machine];
    row.name = step.machine;
    row.waits += step_seconds(step, data.now);
    ++row.wait_count;
  }
  for (auto& [name, row] : rows) profile.machines.push_back(row);

  std::vector<SlowStep> candidates;
  for (size_t i = 0; i < data.steps.size(); ++i) {
    const auto& step = data.steps[i];
    // Subtests and the driver's own nests hold the others: not steps of their own.
    if (step.kind == StepKind::subtest || step.kind == StepKind::run) continue;
    candidates.push_back({static_cast<int>(i), step.name, step.machine, step_seconds(step, data.now), step.line});
  }
  std::stable_sort(candidates.begin(), candidates.end(),
                   [](const SlowStep& a, const SlowStep& b) { return a.seconds > b.seconds; });
  if (candidates.size() > kSlowest) candidates.resize(kSlowest);
  profile.slowest = std::move(candidates);
  return profile;
}

std::vector<std::string> TimingProfile::to_lines(const std::string& script) const {
  std::vector<std::string> lines;
  lines.push_back(fmt::format("timing profile ({:.2f} seconds in all):", total));
  if (!machines.empty()) {
    size_t width = 7;
    for (const auto& m : machines) width = std::max(width, m.name.size());
    lines.push_back(fmt::format("  {:<{}}  {:>9}  {:>9}  {:>9}  {:>9}", "machine", width, "boot", "commands", "waits",
                                "(polling)"));
    for (const auto& m : machines)
      lines.push_back(fmt::format("  {:<{}}  {:>8.2f}s  {:>8.2f}s  {:>8.2f}s  {:>8.2f}s", m.name, width, m.boot,
                                  m.commands, m.waits, m.polling));
  }
  if (!slowest.empty()) {
    lines.push_back(fmt::format("  the {} slowest steps:", slowest.size()));
    std::string file = script.empty() ? "line" : script;
    for (const auto& s : slowest) {
      std::string where = s.line > 0 ? fmt::format("  ({}:{})", file, s.line) : "";
      std::string name = shortened(s.name, 100);
      lines.push_back(fmt::format("  {:>8.2f}s  {}{}{}", s.seconds, s.machine.empty() ? "" : s.machine + ": ", name,
                                  where));
    }
  }
  return lines;
}

}  // namespace td
