// The driver's log. Every message goes to two places as the test runs: the
// terminal (stderr, in the reference's plain formats) and, when $LOGFILE is
// set, an XML document (<logfile>, <nest><head/>…</nest>, <line/>) that is
// streamed to disk and always ends well-formed. Safe to call from any thread:
// the serial console readers log concurrently with the test script.
//
// Lines have a level (debug < info < warning < error): the terminal shows
// those at or above the logger's level (info unless set), the XML log keeps
// all of them (with a `level` attribute unless info). Warnings print as
// "??? Warning: message" ("??? Warning (Category): message" with a
// `category` attribute), errors as "!!! message".
//
// A JUnit report (junit.h) may be attached: subtests become its cases, each
// line logged goes to the current case's output, and close() writes it.
// Nests, problems, machine events, command times and screenshots also go to
// the run's record (run_record.h), for the timing profile and, when one is
// attached, the HTML report (html_report.h) that close() writes; with a
// report the record keeps the log and serial lines too.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <chrono>
#include <exception>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "test_driver/run_record.h"

namespace tinyxml2 {
class XMLPrinter;
}

namespace td {

class JUnitReport;
struct JUnitProblem;

enum class LogLevel { debug = 10, info = 20, warning = 30, error = 40 };

// "debug", "info", "warning" (or "warn"), "error", in any case; nullopt otherwise.
std::optional<LogLevel> parse_log_level(std::string_view name);
// The lowercase name of a level.
const char* log_level_name(LogLevel level);

// Ordered name/value pairs, written as XML attributes.
using LogAttributes = std::vector<std::pair<std::string, std::string>>;

class Logger {
 public:
  Logger();
  ~Logger();
  Logger(const Logger&) = delete;
  Logger& operator=(const Logger&) = delete;

  // Starts the XML log at `path` ("" or "/dev/null" for none), closing any
  // previous one. The constructor opens $LOGFILE.
  void open(const std::string& path);
  // Closes every open nest and the document. Idempotent.
  void close();
  // Why the XML log could not be written to the end ("cannot write the log
  // file F: No space left on device"), or "" when nothing was lost. A run
  // whose log lost lines must not pass.
  std::string write_error() const;

  // At info level, as the reference's log().
  void log(const std::string& message, const LogAttributes& attributes = {});
  void log_at(LogLevel level, const std::string& message, const LogAttributes& attributes = {});
  void debug(const std::string& message, const LogAttributes& attributes = {});
  void info(const std::string& message, const LogAttributes& attributes = {});
  void warning(const std::string& message, const LogAttributes& attributes = {});
  // Logs the message; raising is the caller's business (the reference
  // exited the process here, which skipped all cleanup).
  void error(const std::string& message, const LogAttributes& attributes = {});

  // One line of a machine's serial console.
  void log_serial(const std::string& message, const std::string& machine);
  // Several lines at once: one lock, one flush, one terminal write.
  void log_serial(const std::vector<std::string>& messages, const std::string& machine);

  // Opens a nest: logs the head now and "(finished: …, in N.NN seconds)"
  // when it ends. Use Nest for scoped nests.
  void begin_nest(const std::string& message, const LogAttributes& attributes = {});
  // `failed`: an exception left the nest (the record marks its step).
  void end_nest(bool failed = false);

  class Nest {
   public:
    Nest(Logger& logger, const std::string& message, const LogAttributes& attributes = {});
    ~Nest();
    Nest(const Nest&) = delete;
    Nest& operator=(const Nest&) = delete;

   private:
    Logger& logger_;
    int exceptions_ = std::uncaught_exceptions();  // more at the end: an exception leaves the nest
  };

  // The lowest level the terminal shows (the XML log and JUnit report get all).
  void set_level(LogLevel level);
  LogLevel level() const;

  // Attaches a JUnit report that close() writes to `path` (a report already
  // attached is written first). Throws td::Error when `path`'s directory
  // does not exist.
  void open_junit(const std::filesystem::path& path, const std::string& suite_name = "NixOS integration test");
  bool has_junit() const;
  // `with subtest(name):` a nest, and a case of the JUnit report.
  void begin_subtest(const std::string& name);
  void end_subtest(bool failed = false);
  // A failure (or an error) of the current subtest, or of "main" outside
  // any; nothing without a JUnit report.
  void record_problem(const JUnitProblem& problem);
  // Whether the JUnit report has a subtest open.
  bool in_subtest() const;

  // Attaches an HTML report that close() writes to `path` (and keeps the
  // log and serial lines for it from now on). Throws td::Error when `path`'s
  // directory does not exist.
  void open_html_report(const std::filesystem::path& path, const std::string& title = "NixOS integration test");
  bool has_html_report() const;
  // A screenshot `path` of `machine` was written: its PNG goes to the record, at the open step.
  void record_screenshot(const std::string& machine, const std::filesystem::path& path);
  void machine_event(const std::string& machine, RunRecord::MachineEvent event);
  // A command of `machine` ran from `start` until now.
  void record_command(const std::string& machine, RunRecord::Clock::time_point start);
  // How the run ended, for the report: "passed", "failed", "timed out", "interrupted".
  void set_outcome(const std::string& outcome, const std::string& message);
  void set_script_path(const std::string& path);
  // The timing profile of the run so far, as lines for the terminal.
  std::vector<std::string> timing_profile() const;
  RunRecord& record() { return record_; }

  void set_print_serial(bool on);
  bool print_serial() const;

  // Whether terminal output uses colours (stderr is a terminal and NO_COLOR
  // is unset). Tests may override it.
  void set_color(bool on);

 private:
  struct OpenNest {
    std::string message;
    std::chrono::steady_clock::time_point start;
  };

  void print(const std::string& text);
  void print_at(LogLevel level, const std::string& text);
  void close_xml_locked();
  // An XML log is open, this is the process that opened it (a fork of the
  // driver writes nothing to it, nor the JUnit report), and no write to it
  // has failed.
  bool xml_active() const;
  // Flushes what the XML printer wrote. The file then ends with the closing
  // tags of the elements still open, written ahead of the stream's
  // position, so that it is well-formed up to its last complete element
  // whatever happens next, a full disk included.
  void flush_xml_locked();
  void flush_xml_locked(const std::string& tail);
  // A write failed (errno `error`): the file is cut back to its last
  // complete element and closed well-formed; nothing more is written.
  void lose_xml_locked(int error);
  std::string xml_tail() const;
  void write_junit_locked();
  void write_report_locked();
  void begin_nest_locked(const std::string& message, const LogAttributes& attributes, bool is_subtest);
  void xml_line(const std::string& message, const LogAttributes& attributes);
  void xml_element(const char* name, const std::string& text, const LogAttributes& attributes);
  // `recorded`: the line also goes to the record's lines.
  void log_locked(LogLevel level, const std::string& message, const LogAttributes& attributes, bool recorded = true);

  mutable std::mutex mutex_;
  FILE* file_ = nullptr;
  std::string path_;          // of the XML log
  long good_end_ = 0;         // where the last complete element ends
  std::string good_tail_;     // the closing tags written there
  std::string write_error_;   // why the XML log lost lines, if it did
  pid_t owner_ = ::getpid();  // the process whose log and report these are
  std::unique_ptr<tinyxml2::XMLPrinter> xml_;
  std::vector<OpenNest> nests_;
  bool print_serial_ = true;
  bool color_ = false;
  LogLevel level_ = LogLevel::info;
  std::unique_ptr<JUnitReport> junit_;
  std::filesystem::path junit_path_;
  RunRecord record_;
  std::optional<std::filesystem::path> report_path_;
  std::string report_title_;
  std::string script_path_;
};

// The process-wide logger, as the reference's `rootlog`.
Logger& rootlog();

}  // namespace td
