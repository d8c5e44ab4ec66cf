#include "test_driver/logger.h"

#include <fmt/format.h>
#include <tinyxml2.h>
#include <unistd.h>

#include <cstdlib>

#include "test_driver/errors.h"
#include "test_driver/utf8.h"

namespace td {

Logger::Logger() {
  const char* no_color = std::getenv("NO_COLOR");
  color_ = isatty(STDERR_FILENO) && (no_color == nullptr || *no_color == '\0');
  const char* logfile = std::getenv("LOGFILE");
  open(logfile ? logfile : "");
}

Logger::~Logger() { close(); }

void Logger::open(const std::string& path) {
  close();
  std::lock_guard lock(mutex_);
  if (path.empty() || path == "/dev/null") return;
  file_ = std::fopen(path.c_str(), "w");
  if (!file_) throw Error(fmt::format("cannot open the log file {}: {}", path, std::strerror(errno)));
  xml_ = std::make_unique<tinyxml2::XMLPrinter>(file_, /*compact=*/false);
  xml_->PushHeader(false, true);
  xml_->OpenElement("logfile");
  std::fflush(file_);
}

void Logger::close() {
  std::lock_guard lock(mutex_);
  if (!xml_) return;
  for (size_t i = 0; i < nests_.size(); ++i) xml_->CloseElement();
  nests_.clear();
  xml_->CloseElement();  // logfile
  std::fputc('\n', file_);
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

void Logger::xml_line(const std::string& message, const LogAttributes& attributes) {
  if (!xml_) return;
  xml_element("line", message, attributes);
  std::fflush(file_);
}

static std::string with_prefix(const std::string& message, const LogAttributes& attributes) {
  for (const auto& [key, value] : attributes)
    if (key == "machine") return value + ": " + message;
  return message;
}

void Logger::log_locked(const std::string& message, const LogAttributes& attributes) {
  print(with_prefix(message, attributes));
  xml_line(message, attributes);
}

void Logger::log(const std::string& message, const LogAttributes& attributes) {
  std::lock_guard lock(mutex_);
  log_locked(message, attributes);
}

void Logger::info(const std::string& message, const LogAttributes& attributes) { log(message, attributes); }
void Logger::warning(const std::string& message, const LogAttributes& attributes) { log(message, attributes); }
void Logger::error(const std::string& message, const LogAttributes& attributes) { log(message, attributes); }

void Logger::log_serial(const std::string& message, const std::string& machine) {
  std::string clean = strip_control(message);
  std::lock_guard lock(mutex_);
  xml_line(clean, {{"machine", machine}, {"type", "serial"}});
  if (print_serial_) {
    std::string text = fmt::format("{} # {}", machine, clean);
    print(color_ ? "\033[2m" + text + "\033[0m" : text);
  }
}

void Logger::begin_nest(const std::string& message, const LogAttributes& attributes) {
  std::lock_guard lock(mutex_);
  print(with_prefix(message, attributes));
  if (xml_) {
    xml_->OpenElement("nest");
    xml_element("head", message, attributes);
    std::fflush(file_);
  }
  nests_.push_back({message, std::chrono::steady_clock::now()});
}

void Logger::end_nest() {
  std::lock_guard lock(mutex_);
  if (nests_.empty()) return;
  OpenNest nest = std::move(nests_.back());
  nests_.pop_back();
  std::chrono::duration<double> took = std::chrono::steady_clock::now() - nest.start;
  log_locked(fmt::format("(finished: {}, in {:.2f} seconds)", nest.message, took.count()), {});
  if (xml_) {
    xml_->CloseElement();
    std::fflush(file_);
  }
}

Logger::Nest::Nest(Logger& logger, const std::string& message, const LogAttributes& attributes)
    : logger_(logger) {
  logger_.begin_nest(message, attributes);
}

Logger::Nest::~Nest() { logger_.end_nest(); }

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
