// The driver's log. Every message goes to two places as the test runs: the
// terminal (stderr, in the reference's plain formats) and, when $LOGFILE is
// set, an XML document (<logfile>, <nest><head/>…</nest>, <line/>) that is
// streamed to disk and always ends well-formed. Safe to call from any thread:
// the serial console readers log concurrently with the test script.
#pragma once

#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace tinyxml2 {
class XMLPrinter;
}

namespace td {

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

  void log(const std::string& message, const LogAttributes& attributes = {});
  void info(const std::string& message, const LogAttributes& attributes = {});
  void warning(const std::string& message, const LogAttributes& attributes = {});
  // Logs the message; raising is the caller's business (the reference
  // exited the process here, which skipped all cleanup).
  void error(const std::string& message, const LogAttributes& attributes = {});

  // One line of a machine's serial console.
  void log_serial(const std::string& message, const std::string& machine);

  // Opens a nest: logs the head now and "(finished: …, in N.NN seconds)"
  // when it ends. Use Nest for scoped nests.
  void begin_nest(const std::string& message, const LogAttributes& attributes = {});
  void end_nest();

  class Nest {
   public:
    Nest(Logger& logger, const std::string& message, const LogAttributes& attributes = {});
    ~Nest();
    Nest(const Nest&) = delete;
    Nest& operator=(const Nest&) = delete;

   private:
    Logger& logger_;
  };

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
  void xml_line(const std::string& message, const LogAttributes& attributes);
  void xml_element(const char* name, const std::string& text, const LogAttributes& attributes);
  void log_locked(const std::string& message, const LogAttributes& attributes);

  mutable std::mutex mutex_;
  FILE* file_ = nullptr;
  std::unique_ptr<tinyxml2::XMLPrinter> xml_;
  std::vector<OpenNest> nests_;
  bool print_serial_ = true;
  bool color_ = false;
};

// The process-wide logger, as the reference's `rootlog`.
Logger& rootlog();

}  // namespace td
