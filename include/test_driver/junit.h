// A JUnit XML report of one test run, for CI tools (GitLab, Jenkins, GitHub
// test reporters): one <testcase> per subtest, nested ones named by their
// nesting ("outer / inner"), and a "main" case for what ran outside any
// subtest (listed when there are no subtests or when it failed). Each case
// keeps its time, the log lines logged while it was the innermost open case
// (<system-out>, errors also in <system-err>) and its first problem: a
// <failure> (an Exception) or an <error> (an interruption, a timeout).
//
// Written as
//   <testsuites name tests failures errors time>
//     <testsuite name tests failures errors skipped time timestamp hostname>
//       <testcase classname name time>[<failure message type>details</failure>]
//         <system-out>…</system-out></testcase>…
// which is the structure of the common JUnit schema (Ant's junit.xsd, as
// read by Jenkins' and GitLab's parsers). Thread-safe: serial console
// readers add output concurrently with the test script.
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace td {

struct JUnitProblem {
  enum class Kind { failure, error };
  Kind kind = Kind::failure;
  std::string message;  // the message attribute: the exception's text
  std::string type;     // the type attribute: the exception's class name
  std::string details;  // the element's text: a traceback
};

class JUnitReport {
 public:
  // Where the report reads the time (a test gives a fake one).
  using TimeSource = std::function<std::chrono::steady_clock::time_point()>;
  static constexpr const char* kDefaultSuiteName = "NixOS integration test";
  static constexpr const char* kMainCase = "main";
  // Per case and stream; longer output is cut with a note.
  static constexpr std::size_t kMaxOutputBytes = 4 << 20;

  explicit JUnitReport(std::string suite_name = kDefaultSuiteName, TimeSource clock = {});

  // A subtest starts: a new case, named "outer / inner" inside an open one.
  void begin_case(const std::string& name);
  // The innermost open case ends. Without an open case, does nothing.
  void end_case();
  // Records a problem on the innermost open case, or on "main" outside any.
  // The first problem of a case is kept; later ones add to its details.
  void record_problem(JUnitProblem problem);
  // Whether a subtest is open (a problem would go to it, not to "main").
  bool in_case() const;
  // One log line of the current case (error lines also go to system-err).
  void add_output(std::string_view line, bool is_error = false);

  // The report; cases still open (an interrupted run) count until now.
  std::string to_xml() const;
  // Writes to_xml() to `path` through a temporary file and a rename, so a
  // reader never sees half a report. Throws td::Error.
  void write(const std::filesystem::path& path) const;

 private:
  struct Case {
    std::string name;
    std::chrono::steady_clock::time_point start;
    std::optional<std::chrono::steady_clock::time_point> end;
    std::optional<JUnitProblem> problem;
    std::string out, err;
  };
  Case& current();

  mutable std::mutex mutex_;
  std::string suite_name_;
  TimeSource clock_;
  std::chrono::system_clock::time_point started_at_;
  Case main_;
  std::vector<Case> cases_;    // in the order they began
  std::vector<size_t> open_;   // indexes into cases_, innermost last
};

}  // namespace td
