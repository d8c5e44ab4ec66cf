#include "test_driver/junit.h"

#include <fmt/format.h>
#include <tinyxml2.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "test_driver/errors.h"
#include "test_driver/utf8.h"

namespace td {

namespace {

using Seconds = std::chrono::duration<double>;

std::string xml_text(std::string_view text) { return strip_xml_forbidden(to_valid_utf8(text)); }

std::string format_seconds(Seconds s) { return fmt::format("{:.3f}", s.count() < 0 ? 0.0 : s.count()); }

// Once a stream is full, it ends with the note and takes no more.
constexpr std::string_view kTruncated = "[output truncated]\n";

void append_limited(std::string& buffer, std::string_view line) {
  if (buffer.ends_with(kTruncated)) return;
  if (buffer.size() + line.size() + 1 > JUnitReport::kMaxOutputBytes) {
    buffer += kTruncated;
    return;
  }
  buffer.append(line);
  buffer += '\n';
}

}  // namespace

JUnitReport::JUnitReport(std::string suite_name, TimeSource clock)
    : suite_name_(std::move(suite_name)),
      clock_(clock ? std::move(clock) : TimeSource([] { return std::chrono::steady_clock::now(); })),
      started_at_(std::chrono::system_clock::now()) {
  main_.name = kMainCase;
  main_.start = clock_();
}

JUnitReport::Case& JUnitReport::current() { return open_.empty() ? main_ : cases_[open_.back()]; }

void JUnitReport::begin_case(const std::string& name) {
  std::lock_guard lock(mutex_);
  Case c;
  c.name = open_.empty() ? name : cases_[open_.back()].name + " / " + name;
  c.start = clock_();
  cases_.push_back(std::move(c));
  open_.push_back(cases_.size() - 1);
}

void JUnitReport::end_case() {
  std::lock_guard lock(mutex_);
  if (open_.empty()) return;
  cases_[open_.back()].end = clock_();
  open_.pop_back();
}

void JUnitReport::record_problem(JUnitProblem problem) {
  std::lock_guard lock(mutex_);
  Case& c = current();
  if (!c.problem) {
    c.problem = std::move(problem);
    return;
  }
  std::string& details = c.problem->details;
  if (!details.empty() && details.back() != '\n') details += '\n';
  details += fmt::format("then: {}{}{}", problem.type, problem.type.empty() ? "" : ": ", problem.message);
}

bool JUnitReport::in_case() const {
  std::lock_guard lock(mutex_);
  return !open_.empty();
}

void JUnitReport::add_output(std::string_view line, bool is_error) {
  std::lock_guard lock(mutex_);
  Case& c = current();
  append_limited(c.out, line);
  if (is_error) append_limited(c.err, line);
}

std::string JUnitReport::to_xml() const {
  std::lock_guard lock(mutex_);
  auto now = clock_();
  std::vector<const Case*> listed;
  if (cases_.empty() || main_.problem) listed.push_back(&main_);
  for (const auto& c : cases_) listed.push_back(&c);

  int failures = 0, errors = 0;
  for (const Case* c : listed)
    if (c->problem) ++(c->problem->kind == JUnitProblem::Kind::failure ? failures : errors);
  std::string total = format_seconds(now - main_.start);
  std::string tests = std::to_string(listed.size());

  char host[256] = "localhost";
  if (::gethostname(host, sizeof host) != 0) std::strcpy(host, "localhost");
  host[sizeof host - 1] = '\0';
  std::time_t started = std::chrono::system_clock::to_time_t(started_at_);
  std::tm tm{};
  gmtime_r(&started, &tm);
  char timestamp[32];
  std::strftime(timestamp, sizeof timestamp, "%Y-%m-%dT%H:%M:%S", &tm);

  tinyxml2::XMLPrinter printer(nullptr, /*compact=*/false);
  printer.PushHeader(false, true);
  printer.OpenElement("testsuites");
  printer.PushAttribute("name", xml_text(suite_name_).c_str());
  printer.PushAttribute("tests", tests.c_str());
  printer.PushAttribute("failures", failures);
  printer.PushAttribute("errors", errors);
  printer.PushAttribute("time", total.c_str());
  printer.OpenElement("testsuite");
  printer.PushAttribute("name", xml_text(suite_name_).c_str());
  printer.PushAttribute("tests", tests.c_str());
  printer.PushAttribute("failures", failures);
  printer.PushAttribute("errors", errors);
  printer.PushAttribute("skipped", 0);
  printer.PushAttribute("time", total.c_str());
  printer.PushAttribute("timestamp", timestamp);
  printer.PushAttribute("hostname", xml_text(host).c_str());
  for (const Case* c : listed) {
    printer.OpenElement("testcase");
    printer.PushAttribute("classname", xml_text(suite_name_).c_str());
    printer.PushAttribute("name", xml_text(c->name).c_str());
    printer.PushAttribute("time", format_seconds(c->end.value_or(now) - c->start).c_str());
    if (c->problem) {
      const JUnitProblem& p = *c->problem;
      printer.OpenElement(p.kind == JUnitProblem::Kind::failure ? "failure" : "error");
      printer.PushAttribute("message", xml_text(p.message).c_str());
      if (!p.type.empty()) printer.PushAttribute("type", xml_text(p.type).c_str());
      if (!p.details.empty()) printer.PushText(xml_text(p.details).c_str());
      printer.CloseElement();
    }
    if (!c->out.empty()) {
      printer.OpenElement("system-out");
      printer.PushText(xml_text(c->out).c_str());
      printer.CloseElement();
    }
    if (!c->err.empty()) {
      printer.OpenElement("system-err");
      printer.PushText(xml_text(c->err).c_str());
      printer.CloseElement();
    }
    printer.CloseElement();  // testcase
  }
  printer.CloseElement();  // testsuite
  printer.CloseElement();  // testsuites
  return std::string(printer.CStr(), printer.CStrSize() > 0 ? printer.CStrSize() - 1 : 0) + "\n";
}

void JUnitReport::write(const std::filesystem::path& path) const {
  std::string xml = to_xml();
  std::filesystem::path tmp = path;
  tmp += fmt::format(".tmp{}", ::getpid());
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (!f) throw Error(fmt::format("cannot write the JUnit report {}: {}", path.string(), std::strerror(errno)));
  bool ok = std::fwrite(xml.data(), 1, xml.size(), f) == xml.size();
  ok = (std::fclose(f) == 0) && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    int saved = errno;
    std::remove(tmp.c_str());
    throw Error(fmt::format("cannot write the JUnit report {}: {}", path.string(), std::strerror(saved)));
  }
}

}  // namespace td
