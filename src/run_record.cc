#include "test_driver/run_record.h"

#include <algorithm>

namespace td {

namespace {

thread_local int current_script_line = 0;

bool starts_with(const std::string& text, const char* prefix) { return text.rfind(prefix, 0) == 0; }

}  // namespace

const char* step_kind_name(StepKind kind) {
  switch (kind) {
    case StepKind::run: return "run";
    case StepKind::subtest: return "subtest";
    case StepKind::boot: return "boot";
    case StepKind::command: return "command";
    case StepKind::wait: return "wait";
    case StepKind::screenshot: return "screenshot";
    case StepKind::other: return "other";
  }
  return "other";
}

StepKind classify_step(const std::string& message, bool has_machine, bool has_image, bool is_subtest) {
  if (is_subtest) return StepKind::subtest;
  if (has_image) return StepKind::screenshot;
  if (!has_machine) {
    // The driver's own nests (start all VMs, cleanup, …) and the script's rootlog.nested().
    static const char* const run_nests[] = {"run the VM test script", "start all VMs", "start all VLans", "cleanup",
                                            "wait for all VMs to finish"};
    for (const char* name : run_nests)
      if (message == name) return StepKind::run;
    return StepKind::other;
  }
  if (message == "waiting for the VM to finish booting") return StepKind::boot;
  if (starts_with(message, "must succeed: ") || starts_with(message, "must fail: ")) return StepKind::command;
  if (starts_with(message, "waiting for")) return StepKind::wait;
  return StepKind::other;
}

RunRecord::RunRecord(TimeSource clock)
    : clock_(clock ? std::move(clock) : TimeSource([] { return Clock::now(); })), start_(clock_()) {}

double RunRecord::seconds(Clock::time_point t) const { return std::chrono::duration<double>(t - start_).count(); }

double RunRecord::now() const { return seconds(clock_()); }

void RunRecord::set_keep_text(bool on) {
  std::lock_guard lock(mutex_);
  keep_text_ = on;
}

bool RunRecord::keeps_text() const {
  std::lock_guard lock(mutex_);
  return keep_text_;
}

int RunRecord::innermost() const {
  for (auto it = open_.rbegin(); it != open_.rend(); ++it)
    if (*it >= 0) return *it;
  return -1;
}

int RunRecord::begin_step(const std::string& name, const std::string& machine, StepKind kind, int line) {
  std::lock_guard lock(mutex_);
  if (steps_.size() >= kMaxSteps) {
    ++dropped_steps_;
    open_.push_back(-1);
    return -1;
  }
  Step step;
  step.parent = innermost();
  step.name = name;
  step.machine = machine;
  step.kind = kind;
  step.start = now();
  // A step made by the core on another thread (start_all's) has no line of its own.
  step.line = line != 0 ? line : step.parent >= 0 ? steps_[step.parent].line : 0;
  steps_.push_back(std::move(step));
  open_.push_back(static_cast<int>(steps_.size()) - 1);
  return open_.back();
}

void RunRecord::end_step(bool failed) {
  std::lock_guard lock(mutex_);
  if (open_.empty()) return;
  int index = open_.back();
  open_.pop_back();
  if (index < 0) return;
  Step& step = steps_[index];
  step.end = now();
  step.failed = step.failed || failed;
}

void RunRecord::add_problem(Problem problem) {
  std::lock_guard lock(mutex_);
  if (innermost() < 0) {
    // Outside every nest (an error before or after the script): a step of its own.
    Step step;
    step.name = "run";
    step.kind = StepKind::run;
    step.start = step.end.emplace(now());
    steps_.push_back(std::move(step));
    steps_.back().failed = true;
    steps_.back().problems.push_back(std::move(problem));
    return;
  }
  Step& step = steps_[innermost()];
  step.failed = true;
  step.problems.push_back(std::move(problem));
}

void RunRecord::add_line(int level, const std::string& machine, const std::string& text) {
  std::lock_guard lock(mutex_);
  if (!keep_text_) return;
  if (lines_.size() >= kMaxLogLines) {
    ++dropped_lines_;
    return;
  }
  lines_.push_back({now(), innermost(), level, machine, text});
}

void RunRecord::add_serial(const std::string& machine, const std::vector<std::string>& lines) {
  std::lock_guard lock(mutex_);
  if (!keep_text_) return;
  SerialLines& serial = serial_[machine];
  double t = now();
  for (const auto& line : lines) {
    if (serial.text.size() >= kMaxSerialLines) {
      ++serial.dropped;
      continue;
    }
    serial.t.push_back(t);
    serial.text.push_back(line);
  }
}

void RunRecord::add_screenshot(const std::string& machine, const std::string& name, std::string png) {
  std::lock_guard lock(mutex_);
  if (screenshot_bytes_ + png.size() > kMaxScreenshotBytes) png.clear();
  screenshot_bytes_ += png.size();
  screenshots_.push_back({now(), innermost(), machine, name, std::move(png)});
}

void RunRecord::machine_event(const std::string& machine, MachineEvent event) {
  std::lock_guard lock(mutex_);
  machines_[machine].events.emplace_back(now(), event);
}

void RunRecord::add_command(const std::string& machine, Clock::time_point start) {
  double took = std::chrono::duration<double>(clock_() - start).count();
  std::lock_guard lock(mutex_);
  MachineTimes& times = machines_[machine];
  bool in_wait = std::any_of(open_.begin(), open_.end(), [&](int i) {
    return i >= 0 && steps_[i].kind == StepKind::wait && steps_[i].machine == machine;
  });
  if (in_wait) {
    times.polling_seconds += took;
    ++times.probes;
  } else {
    times.command_seconds += took;
    ++times.commands;
  }
}

void RunRecord::set_outcome(std::string outcome, std::string message) {
  std::lock_guard lock(mutex_);
  outcome_ = std::move(outcome);
  outcome_message_ = std::move(message);
}

void RunRecord::set_script_path(std::string path) {
  std::lock_guard lock(mutex_);
  script_path_ = std::move(path);
}

RunRecord::Data RunRecord::snapshot() const {
  std::lock_guard lock(mutex_);
  Data data;
  data.now = now();
  data.outcome = outcome_;
  data.outcome_message = outcome_message_;
  data.steps = steps_;
  data.lines = lines_;
  data.dropped_lines = dropped_lines_;
  data.dropped_steps = dropped_steps_;
  data.serial = serial_;
  data.screenshots = screenshots_;
  data.machines = machines_;
  data.script_path = script_path_;
  return data;
}

RunRecord::ScriptLine::ScriptLine(int line) : saved_(current_script_line) {
  if (line != 0) current_script_line = line;
}

RunRecord::ScriptLine::~ScriptLine() { current_script_line = saved_; }

int RunRecord::ScriptLine::current() { return current_script_line; }

}  // namespace td
