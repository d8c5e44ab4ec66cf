// What happened in a run, kept for the reports people look at rather than
// read (html_report.h) and for the timing profile (timing_profile.h): the
// tree of steps (the log's nests: subtests, `must succeed: …`, waits), each
// with its start and end, its machine, its kind, the line of the test script
// that made it, whether an exception left it and the problems recorded on
// it; the times of the machines' commands (inside a wait: polling); machine
// start, connection and stop; screenshots (their PNG bytes, read when taken);
// and, when text is kept, the log lines and every machine's serial lines.
// Times are seconds since the record began. Thread-safe: the logger feeds it
// under its own lock, serial readers and machine threads through it.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace td {

enum class StepKind { run, subtest, boot, command, wait, screenshot, other };
const char* step_kind_name(StepKind kind);
// The kind of a log nest, from its message and attributes (the core's nests
// have fixed beginnings: "must succeed: ", "waiting for …", an `image`).
StepKind classify_step(const std::string& message, bool has_machine, bool has_image, bool is_subtest);

class RunRecord {
 public:
  using Clock = std::chrono::steady_clock;
  using TimeSource = std::function<Clock::time_point()>;
  // Kept per machine (serial) and in all (log lines); later ones are counted, not kept.
  static constexpr std::size_t kMaxSerialLines = 2'000'000;
  static constexpr std::size_t kMaxLogLines = 500'000;
  // Steps kept; the nests after them are not recorded (a loop of a million commands).
  static constexpr std::size_t kMaxSteps = 1'000'000;
  // PNG bytes of all screenshots together.
  static constexpr std::size_t kMaxScreenshotBytes = 256u << 20;

  struct Problem {
    bool is_error = false;  // an interruption, a timeout (else a failure: an Exception)
    std::string type, message, details;
  };
  struct Step {
    int parent = -1;  // index into steps, -1 for the top level
    std::string name, machine;
    StepKind kind = StepKind::other;
    double start = 0;
    std::optional<double> end;  // none: still open
    int line = 0;               // of the test script, 0 when unknown
    bool failed = false;        // an exception left it
    std::vector<Problem> problems;
  };
  struct Line {
    double t;
    int step;  // the innermost open step, -1 for none
    int level;  // LogLevel's value
    std::string machine, text;
  };
  struct SerialLines {
    std::vector<double> t;
    std::vector<std::string> text;
    std::size_t dropped = 0;
  };
  struct Screenshot {
    double t;
    int step;
    std::string machine, name, png;
  };
  enum class MachineEvent { started, connected, stopped };
  struct MachineTimes {
    std::vector<std::pair<double, MachineEvent>> events;
    double command_seconds = 0;  // commands outside waits
    double polling_seconds = 0;  // commands inside a wait of the machine (its probes)
    int commands = 0, probes = 0;
  };
  // A copy of everything, for writing a report without holding the lock.
  struct Data {
    double now = 0;  // when the copy was taken
    std::string outcome, outcome_message;
    std::vector<Step> steps;
    std::vector<Line> lines;
    std::size_t dropped_lines = 0, dropped_steps = 0;
    std::map<std::string, SerialLines> serial;
    std::vector<Screenshot> screenshots;
    std::map<std::string, MachineTimes> machines;
    std::string script_path;
  };

  explicit RunRecord(TimeSource clock = {});

  // Whether log and serial lines are kept (only a report shows them).
  void set_keep_text(bool on);
  bool keeps_text() const;

  // A log nest opens inside the innermost open step; returns its index.
  int begin_step(const std::string& name, const std::string& machine, StepKind kind, int line);
  // The innermost open step ends (`failed`: an exception left it).
  void end_step(bool failed);
  // A problem on the innermost open step (none open: a step "run" is made).
  void add_problem(Problem problem);
  void add_line(int level, const std::string& machine, const std::string& text);
  void add_serial(const std::string& machine, const std::vector<std::string>& lines);
  // `png`: the file's bytes (empty when it could not be read).
  void add_screenshot(const std::string& machine, const std::string& name, std::string png);
  void machine_event(const std::string& machine, MachineEvent event);
  // A command of `machine` that ran from `start` until now.
  void add_command(const std::string& machine, Clock::time_point start);
  // How the run ended ("passed", "failed", "timed out", "interrupted") and why.
  void set_outcome(std::string outcome, std::string message);
  // The test script's file name, for the report and the profile.
  void set_script_path(std::string path);

  Data snapshot() const;
  double now() const;

  // Where in the test script the current thread's call into the core comes
  // from: set by the bindings (with the GIL held) for the call's length.
  class ScriptLine {
   public:
    explicit ScriptLine(int line);
    ~ScriptLine();
    ScriptLine(const ScriptLine&) = delete;
    ScriptLine& operator=(const ScriptLine&) = delete;
    static int current();

   private:
    int saved_;
  };

 private:
  double seconds(Clock::time_point t) const;
  // The innermost open step that is kept, -1 for none.
  int innermost() const;

  mutable std::mutex mutex_;
  TimeSource clock_;
  Clock::time_point start_;
  bool keep_text_ = false;
  std::string outcome_, outcome_message_, script_path_;
  std::vector<Step> steps_;
  std::vector<int> open_;  // indexes into steps_, innermost last (-1: a step not kept)
  std::size_t dropped_steps_ = 0;
  std::vector<Line> lines_;
  std::size_t dropped_lines_ = 0;
  std::map<std::string, SerialLines> serial_;
  std::vector<Screenshot> screenshots_;
  std::size_t screenshot_bytes_ = 0;
  std::map<std::string, MachineTimes> machines_;
};

}  // namespace td
