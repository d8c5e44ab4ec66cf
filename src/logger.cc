#include "test_driver/logger.h"

#include <fmt/format.h>
#include <tinyxml2.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "test_driver/errors.h"
#include "test_driver/html_report.h"
#include "test_driver/junit.h"
#include "test_driver/timing_profile.h"
#include "test_driver/utf8.h"

namespace td {

std::optional<LogLevel> parse_log_level(std::string_view name) {
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  if (lower == "debug") return LogLevel::debug;
  if (lower == "info") return LogLevel::info;
  if (lower == "warning" || lower == "warn") return LogLevel::warning;
  if (lower == "error") return LogLevel::error;
  return std::nullopt;
}

const char* log_level_name(LogLevel level) {
  switch (level) {
    case LogLevel::debug: return "debug";
    case LogLevel::info: return "info";
    case LogLevel::warning: return "warning";
    case LogLevel::error: return "error";
  }
  return "info";
}

Logger::Logger() {
  const char* no_color = std::getenv("NO_COLOR");
  color_ = isatty(STDERR_FILENO) && (no_color == nullptr || *no_color == '\0');
  const char* logfile = std::getenv("LOGFILE");
  open(logfile ? logfile : "");
}

Logger::~Logger() { close(); }

void Logger::open(const std::string& path) {
  std::lock_guard lock(mutex_);
  close_xml_locked();
  if (path.empty() || path == "/dev/null") return;
  owner_ = ::getpid();
  file_ = std::fopen(path.c_str(), "w");
  if (!file_) throw Error(fmt::format("cannot open the log file {}: {}", path, std::strerror(errno)));
  path_ = path;
  good_end_ = 0;
  good_tail_.clear();
  write_error_.clear();
  // The printer writes to memory; flush_xml_locked() writes it to the file
  // itself, so that a failed write's errno is the real one.
  xml_ = std::make_unique<tinyxml2::XMLPrinter>(nullptr, /*compact=*/false);
  xml_->PushHeader(false, true);
  xml_->OpenElement("logfile");
  flush_xml_locked();
}

std::string Logger::write_error() const {
  std::lock_guard lock(mutex_);
  return write_error_;
}

std::string Logger::xml_tail() const {
  std::string tail;
  for (size_t i = 0; i < nests_.size(); ++i) tail += "</nest>\n";
  return tail + "</logfile>\n";
}

namespace {

// Writes all of `data` at `offset`; false (errno set) when a write fails.
bool write_all_at(int fd, const char* data, size_t size, off_t offset) {
  while (size > 0) {
    ssize_t n = ::pwrite(fd, data, size, offset);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = ENOSPC;
      return false;
    }
    data += n;
    size -= static_cast<size_t>(n);
    offset += n;
  }
  return true;
}

}  // namespace

void Logger::flush_xml_locked() { flush_xml_locked(xml_tail()); }

void Logger::flush_xml_locked(const std::string& tail) {
  if (!xml_active()) return;
  int fd = ::fileno(file_);
  // The new elements go where the last tail begins, and the new tail after
  // them: the file ends well-formed after every flush.
  size_t size = static_cast<size_t>(std::max(0, xml_->CStrSize() - 1));
  off_t end = good_end_ + static_cast<off_t>(size);
  if (!write_all_at(fd, xml_->CStr(), size, good_end_) || !write_all_at(fd, tail.data(), tail.size(), end) ||
      ::ftruncate(fd, end + static_cast<off_t>(tail.size())) != 0)
    return lose_xml_locked(errno ? errno : EIO);
  xml_->ClearBuffer(/*resetToFirstElement=*/false);
  good_end_ = end;
  good_tail_ = tail;
}

void Logger::lose_xml_locked(int error) {
  write_error_ = fmt::format("cannot write the log file {}: {}", path_, std::strerror(error));
  int fd = ::fileno(file_);
  // The bytes of the last good tail were allocated when it was written:
  // writing them again needs no space; whatever came after is cut off.
  write_all_at(fd, good_tail_.data(), good_tail_.size(), good_end_);
  int cut = ::ftruncate(fd, good_end_ + static_cast<off_t>(good_tail_.size()));
  (void)cut;
  std::fclose(file_);
  file_ = nullptr;
  xml_.reset();
  std::string text = "error: " + write_error_ + "; the XML log ends at its last complete line, and the run will fail";
  print(color_ ? "\033[1;31m" + text + "\033[0m" : text);
}

void Logger::close() {
  std::lock_guard lock(mutex_);
  write_junit_locked();
  write_report_locked();
  close_xml_locked();
}

bool Logger::xml_active() const { return xml_ && file_ && ::getpid() == owner_; }

void Logger::write_junit_locked() {
  if (!junit_) return;
  if (::getpid() != owner_) {  // a fork of the driver: the report is the driver's
    junit_.reset();
    return;
  }
  try {
    junit_->write(junit_path_);
  } catch (const std::exception& e) {
    print(std::string("!!! ") + e.what());  // close() runs at exit too: never throws
  }
  junit_.reset();
}

void Logger::write_report_locked() {
  if (!report_path_) return;
  std::filesystem::path path = *report_path_;
  report_path_.reset();
  if (::getpid() != owner_) return;  // a fork of the driver: the report is the driver's
  try {
    HtmlReport::write(path, record_.snapshot(), report_title_);
  } catch (const std::exception& e) {
    print(std::string("!!! ") + e.what());  // close() runs at exit too: never throws
  }
}

void Logger::close_xml_locked() {
  if (!xml_) return;
  if (::getpid() != owner_) {
    // A fork of the driver (a script's os.fork()) ending: the log is the
    // driver's to end, not a second </logfile> from here.
    xml_.reset();
    nests_.clear();
    std::fclose(file_);  // nothing buffered: every write is flushed
    file_ = nullptr;
    return;
  }
  for (size_t i = 0; i < nests_.size(); ++i) xml_->CloseElement();
  nests_.clear();
  xml_->CloseElement();  // logfile
  flush_xml_locked("\n");  // the printer's closing tags are the end now
  if (!xml_) return;        // lost: lose_xml_locked closed the file
  xml_.reset();
  std::fclose(file_);
  file_ = nullptr;
}

void Logger::print(const std::string& text) {
  std::string line = text + "\n";
  // One write per message so lines from threads never interleave.
  ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

void Logger::xml_element(const char* name, const std::string& text, const LogAttributes& attributes) {
  xml_->OpenElement(name);
  for (const auto& [key, value] : attributes) xml_->PushAttribute(key.c_str(), strip_xml_forbidden(value).c_str());
  xml_->PushText(strip_xml_forbidden(text).c_str());
  xml_->CloseElement();
}

void Logger::print_at(LogLevel level, const std::string& text) {
  if (level < level_) return;
  if (!color_ || level == LogLevel::info) return print(text);
  const char* start = level == LogLevel::error ? "\033[1;31m" : level == LogLevel::warning ? "\033[33m" : "\033[2m";
  print(start + text + "\033[0m");
}

void Logger::xml_line(const std::string& message, const LogAttributes& attributes) {
  if (!xml_active()) return;
  xml_element("line", message, attributes);
  flush_xml_locked();
}

static std::string with_prefix(const std::string& message, const LogAttributes& attributes) {
  for (const auto& [key, value] : attributes)
    if (key == "machine") return value + ": " + message;
  return message;
}

// "??? Warning (Category): " before warnings, "!!! " before errors.
static std::string with_level_marker(LogLevel level, const std::string& text, const LogAttributes& attributes) {
  if (level == LogLevel::error) return "!!! " + text;
  if (level != LogLevel::warning) return text;
  for (const auto& [key, value] : attributes)
    if (key == "category" && !value.empty()) return "??? Warning (" + value + "): " + text;
  return "??? Warning: " + text;
}

static std::string attribute(const LogAttributes& attributes, const char* name) {
  for (const auto& [key, value] : attributes)
    if (key == name) return value;
  return "";
}

void Logger::log_locked(LogLevel level, const std::string& message, const LogAttributes& attributes, bool recorded) {
  std::string text = with_level_marker(level, with_prefix(message, attributes), attributes);
  print_at(level, text);
  if (recorded) record_.add_line(static_cast<int>(level), attribute(attributes, "machine"), message);
  if (junit_) junit_->add_output(text, level >= LogLevel::error);
  if (level == LogLevel::info) return xml_line(message, attributes);
  LogAttributes with_level = attributes;
  with_level.emplace_back("level", log_level_name(level));
  xml_line(message, with_level);
}

void Logger::log_at(LogLevel level, const std::string& message, const LogAttributes& attributes) {
  std::lock_guard lock(mutex_);
  log_locked(level, message, attributes);
}

void Logger::log(const std::string& message, const LogAttributes& attributes) {
  log_at(LogLevel::info, message, attributes);
}
void Logger::debug(const std::string& message, const LogAttributes& attributes) {
  log_at(LogLevel::debug, message, attributes);
}
void Logger::info(const std::string& message, const LogAttributes& attributes) {
  log_at(LogLevel::info, message, attributes);
}
void Logger::warning(const std::string& message, const LogAttributes& attributes) {
  log_at(LogLevel::warning, message, attributes);
}
void Logger::error(const std::string& message, const LogAttributes& attributes) {
  log_at(LogLevel::error, message, attributes);
}

void Logger::log_serial(const std::string& message, const std::string& machine) {
  log_serial(std::vector<std::string>{message}, machine);
}

void Logger::log_serial(const std::vector<std::string>& messages, const std::string& machine) {
  if (messages.empty()) return;
  const LogAttributes attributes{{"machine", machine}, {"type", "serial"}};
  std::lock_guard lock(mutex_);
  std::string terminal;
  std::vector<std::string> recorded;
  bool keep = record_.keeps_text();
  for (const auto& message : messages) {
    std::string clean = strip_control(message);
    if (keep) recorded.push_back(clean);
    if (xml_active()) xml_element("line", clean, attributes);
    if (!print_serial_) continue;
    std::string text = fmt::format("{} # {}", machine, clean);
    if (junit_) junit_->add_output(text);
    if (level_ > LogLevel::info) continue;
    if (!terminal.empty()) terminal += '\n';
    terminal += color_ ? "\033[2m" + text + "\033[0m" : text;
  }
  flush_xml_locked();
  if (!terminal.empty()) print(terminal);
  if (keep) record_.add_serial(machine, recorded);
}

void Logger::begin_nest(const std::string& message, const LogAttributes& attributes) {
  std::lock_guard lock(mutex_);
  begin_nest_locked(message, attributes, false);
}

void Logger::begin_nest_locked(const std::string& message, const LogAttributes& attributes, bool is_subtest) {
  std::string machine = attribute(attributes, "machine");
  bool has_image = false;
  for (const auto& [key, value] : attributes) has_image = has_image || key == "image";
  record_.begin_step(message, machine, classify_step(message, !machine.empty(), has_image, is_subtest),
                     RunRecord::ScriptLine::current());
  std::string text = with_prefix(message, attributes);
  print_at(LogLevel::info, text);
  if (junit_) junit_->add_output(text);
  if (xml_active()) {
    xml_->OpenElement("nest");
    xml_element("head", message, attributes);
  }
  nests_.push_back({message, std::chrono::steady_clock::now()});
  flush_xml_locked();  // after the push: the tail closes this nest too
}

void Logger::end_nest(bool failed) {
  std::lock_guard lock(mutex_);
  if (nests_.empty()) return;
  OpenNest nest = std::move(nests_.back());
  nests_.pop_back();
  record_.end_step(failed);
  std::chrono::duration<double> took = std::chrono::steady_clock::now() - nest.start;
  log_locked(LogLevel::info, fmt::format("(finished: {}, in {:.2f} seconds)", nest.message, took.count()), {},
             /*recorded=*/false);
  if (xml_active()) {
    xml_->CloseElement();
    flush_xml_locked();
  }
}

Logger::Nest::Nest(Logger& logger, const std::string& message, const LogAttributes& attributes)
    : logger_(logger) {
  logger_.begin_nest(message, attributes);
}

Logger::Nest::~Nest() { logger_.end_nest(std::uncaught_exceptions() > exceptions_); }

void Logger::set_level(LogLevel level) {
  std::lock_guard lock(mutex_);
  level_ = level;
}

LogLevel Logger::level() const {
  std::lock_guard lock(mutex_);
  return level_;
}

void Logger::open_junit(const std::filesystem::path& path, const std::string& suite_name) {
  std::filesystem::path parent = path.parent_path().empty() ? "." : path.parent_path();
  std::error_code ec;
  if (!std::filesystem::is_directory(parent, ec))
    throw Error(fmt::format("cannot write the JUnit report {}: {} is not a directory", path.string(), parent.string()));
  std::lock_guard lock(mutex_);
  write_junit_locked();
  junit_ = std::make_unique<JUnitReport>(suite_name);
  junit_path_ = path;
}

bool Logger::has_junit() const {
  std::lock_guard lock(mutex_);
  return junit_ != nullptr;
}

void Logger::begin_subtest(const std::string& name) {
  std::lock_guard lock(mutex_);
  if (junit_) junit_->begin_case(name);
  begin_nest_locked(name, {}, true);
}

void Logger::end_subtest(bool failed) {
  end_nest(failed);
  std::lock_guard lock(mutex_);
  if (junit_) junit_->end_case();
}

void Logger::record_problem(const JUnitProblem& problem) {
  std::lock_guard lock(mutex_);
  if (junit_) junit_->record_problem(problem);
  record_.add_problem({problem.kind == JUnitProblem::Kind::error, problem.type, problem.message, problem.details});
}

void Logger::open_html_report(const std::filesystem::path& path, const std::string& title) {
  std::filesystem::path parent = path.parent_path().empty() ? "." : path.parent_path();
  std::error_code ec;
  if (!std::filesystem::is_directory(parent, ec))
    throw Error(fmt::format("cannot write the HTML report {}: {} is not a directory", path.string(), parent.string()));
  std::lock_guard lock(mutex_);
  write_report_locked();
  report_path_ = path;
  report_title_ = title;
  record_.set_keep_text(true);
}

bool Logger::has_html_report() const {
  std::lock_guard lock(mutex_);
  return report_path_.has_value();
}

void Logger::record_screenshot(const std::string& machine, const std::filesystem::path& path) {
  std::string png;
  if (record_.keeps_text()) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream bytes;
    bytes << in.rdbuf();
    png = std::move(bytes).str();
  }
  record_.add_screenshot(machine, path.filename().string(), std::move(png));
}

void Logger::machine_event(const std::string& machine, RunRecord::MachineEvent event) {
  record_.machine_event(machine, event);
}

void Logger::record_command(const std::string& machine, RunRecord::Clock::time_point start) {
  record_.add_command(machine, start);
}

void Logger::set_outcome(const std::string& outcome, const std::string& message) {
  record_.set_outcome(outcome, message);
}

void Logger::set_script_path(const std::string& path) {
  std::lock_guard lock(mutex_);
  script_path_ = path;
  record_.set_script_path(path);
}

std::vector<std::string> Logger::timing_profile() const {
  std::string script;
  {
    std::lock_guard lock(mutex_);
    script = std::filesystem::path(script_path_).filename().string();
  }
  return TimingProfile::of(record_.snapshot()).to_lines(script);
}

bool Logger::in_subtest() const {
  std::lock_guard lock(mutex_);
  return junit_ && junit_->in_case();
}

void Logger::set_print_serial(bool on) {
  std::lock_guard lock(mutex_);
  print_serial_ = on;
}

bool Logger::print_serial() const {
  std::lock_guard lock(mutex_);
  return print_serial_;
}

void Logger::set_color(bool on) {
  std::lock_guard lock(mutex_);
  color_ = on;
}

Logger& rootlog() {
  // Never destroyed: threads may log during exit. Driver shutdown and the
  // executable close it explicitly; close() is also registered with atexit.
  static Logger* logger = [] {
    auto* l = new Logger();
    std::atexit([] { rootlog().close(); });
    return l;
  }();
  return *logger;
}

}  // namespace td
