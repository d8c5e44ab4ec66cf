#include "test_driver/logger.h"

#include <gtest/gtest.h>
#include <tinyxml2.h>

#include <filesystem>
#include <thread>
#include <unistd.h>

#include "test_driver/junit.h"

TEST(Logger, WritesWellFormedXmlEvenWithOpenNests) {
  auto path = std::filesystem::temp_directory_path() / "td_logger_test.xml";
  td::Logger log;
  log.open(path.string());
  log.begin_nest("outer", {{"machine", "m"}});
  log.log("hello <&> \x01 world", {{"machine", "m"}});
  log.log_serial(std::string("serial\x1b[0m line\0", 16), "m");
  log.begin_nest("inner");  // never ended: close() must end it
  log.close();

  tinyxml2::XMLDocument doc;
  ASSERT_EQ(doc.LoadFile(path.c_str()), tinyxml2::XML_SUCCESS) << doc.ErrorStr();
  auto* root = doc.FirstChildElement("logfile");
  ASSERT_NE(root, nullptr);
  auto* nest = root->FirstChildElement("nest");
  ASSERT_NE(nest, nullptr);
  EXPECT_STREQ(nest->FirstChildElement("head")->GetText(), "outer");
  EXPECT_STREQ(nest->FirstChildElement("head")->Attribute("machine"), "m");
  auto* line = nest->FirstChildElement("line");
  EXPECT_STREQ(line->GetText(), "hello <&>  world");
  auto* serial = line->NextSiblingElement("line");
  EXPECT_STREQ(serial->Attribute("type"), "serial");
  EXPECT_STREQ(serial->GetText(), "serial[0m line");
  std::filesystem::remove(path);
}

TEST(Logger, FinishedLineClosesNest) {
  auto path = std::filesystem::temp_directory_path() / "td_logger_test2.xml";
  td::Logger log;
  log.open(path.string());
  { td::Logger::Nest n(log, "step"); }
  log.close();
  tinyxml2::XMLDocument doc;
  ASSERT_EQ(doc.LoadFile(path.c_str()), tinyxml2::XML_SUCCESS);
  auto* line = doc.FirstChildElement("logfile")->FirstChildElement("nest")->FirstChildElement("line");
  ASSERT_NE(line, nullptr);
  EXPECT_TRUE(std::string(line->GetText()).starts_with("(finished: step, in 0.0"));
  std::filesystem::remove(path);
}

TEST(Logger, ThreadsLogConcurrently) {
  auto path = std::filesystem::temp_directory_path() / "td_logger_test3.xml";
  td::Logger log;
  log.set_print_serial(false);
  log.open(path.string());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 500; ++i) log.log_serial("line " + std::to_string(i), "m" + std::to_string(t));
    });
  for (auto& t : threads) t.join();
  log.close();
  tinyxml2::XMLDocument doc;
  ASSERT_EQ(doc.LoadFile(path.c_str()), tinyxml2::XML_SUCCESS);
  int lines = 0;
  for (auto* l = doc.FirstChildElement("logfile")->FirstChildElement("line"); l; l = l->NextSiblingElement("line")) ++lines;
  EXPECT_EQ(lines, 2000);
  std::filesystem::remove(path);
}

namespace {

// Captures what the logger prints on stderr (fd 2) while `fn` runs.
template <class F>
std::string capture_stderr(F fn) {
  std::fflush(stderr);
  char name[] = "/tmp/td_logger_stderr_XXXXXX";
  int fd = ::mkstemp(name);
  int saved = ::dup(2);
  ::dup2(fd, 2);
  fn();
  ::dup2(saved, 2);
  ::close(saved);
  std::string out;
  ::lseek(fd, 0, SEEK_SET);
  char buffer[4096];
  for (ssize_t n; (n = ::read(fd, buffer, sizeof buffer)) > 0;) out.append(buffer, n);
  ::close(fd);
  ::unlink(name);
  return out;
}

}  // namespace

TEST(Logger, ParsesLevels) {
  EXPECT_EQ(td::parse_log_level("debug"), td::LogLevel::debug);
  EXPECT_EQ(td::parse_log_level("INFO"), td::LogLevel::info);
  EXPECT_EQ(td::parse_log_level("Warning"), td::LogLevel::warning);
  EXPECT_EQ(td::parse_log_level("warn"), td::LogLevel::warning);
  EXPECT_EQ(td::parse_log_level("error"), td::LogLevel::error);
  EXPECT_EQ(td::parse_log_level("verbose"), std::nullopt);
  EXPECT_EQ(td::parse_log_level(""), std::nullopt);
  EXPECT_STREQ(td::log_level_name(td::LogLevel::warning), "warning");
}

TEST(Logger, TerminalShowsLevelsAtOrAboveTheThresholdXmlKeepsAll) {
  auto path = std::filesystem::temp_directory_path() / "td_logger_test_levels.xml";
  td::Logger log;
  log.set_color(false);
  log.open(path.string());
  EXPECT_EQ(log.level(), td::LogLevel::info);
  std::string shown = capture_stderr([&] {
    log.debug("a debug line");
    log.info("an info line");
    log.warning("careful", {{"category", "Deprecation"}});
    log.warning("plain warning", {{"machine", "m"}});
    log.error("it broke");
  });
  EXPECT_EQ(shown,
            "an info line\n"
            "??? Warning (Deprecation): careful\n"
            "??? Warning: m: plain warning\n"
            "!!! it broke\n");
  log.set_level(td::LogLevel::warning);
  shown = capture_stderr([&] {
    log.info("hidden");
    log.log_serial("hidden serial", "m");
    { td::Logger::Nest n(log, "hidden nest"); }
    log.warning("shown");
  });
  EXPECT_EQ(shown, "??? Warning: shown\n");
  log.set_level(td::LogLevel::debug);
  shown = capture_stderr([&] { log.debug("now shown"); });
  EXPECT_EQ(shown, "now shown\n");
  log.close();

  tinyxml2::XMLDocument doc;
  ASSERT_EQ(doc.LoadFile(path.c_str()), tinyxml2::XML_SUCCESS);
  std::vector<std::pair<std::string, std::string>> lines;  // text, level
  for (auto* l = doc.FirstChildElement("logfile")->FirstChildElement("line"); l; l = l->NextSiblingElement("line"))
    lines.emplace_back(l->GetText() ? l->GetText() : "", l->Attribute("level") ? l->Attribute("level") : "");
  ASSERT_GE(lines.size(), 6u);
  EXPECT_EQ(lines[0], std::make_pair(std::string("a debug line"), std::string("debug")));
  EXPECT_EQ(lines[1], std::make_pair(std::string("an info line"), std::string("")));
  EXPECT_EQ(lines[2], std::make_pair(std::string("careful"), std::string("warning")));
  EXPECT_EQ(lines[4], std::make_pair(std::string("it broke"), std::string("error")));
  EXPECT_EQ(lines[5].first, "hidden");
  std::filesystem::remove(path);
}

TEST(Logger, SubtestsFeedTheJUnitReportWrittenAtClose) {
  auto dir = std::filesystem::temp_directory_path() / ("td_logger_junit_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  td::Logger log;
  EXPECT_THROW(log.open_junit(dir / "no" / "such" / "report.xml"), std::exception);
  log.open_junit(dir / "report.xml");
  EXPECT_TRUE(log.has_junit());
  capture_stderr([&] {
    log.info("setup");
    log.begin_subtest("outer");
    log.begin_subtest("inner");
    EXPECT_TRUE(log.in_subtest());
    log.error("Test \"inner\" failed");
    log.record_problem({td::JUnitProblem::Kind::failure, "boom", "AssertionError", ""});
    log.end_subtest();
    log.end_subtest();
    EXPECT_FALSE(log.in_subtest());
    log.close();
  });
  EXPECT_FALSE(log.has_junit());
  tinyxml2::XMLDocument doc;
  ASSERT_EQ(doc.LoadFile((dir / "report.xml").c_str()), tinyxml2::XML_SUCCESS);
  auto* c = doc.FirstChildElement("testsuites")->FirstChildElement("testsuite")->FirstChildElement("testcase");
  ASSERT_NE(c, nullptr);
  EXPECT_STREQ(c->Attribute("name"), "outer");
  EXPECT_EQ(c->FirstChildElement("failure"), nullptr);
  c = c->NextSiblingElement("testcase");
  ASSERT_NE(c, nullptr);
  EXPECT_STREQ(c->Attribute("name"), "outer / inner");
  EXPECT_STREQ(c->FirstChildElement("failure")->Attribute("message"), "boom");
  std::string out = c->FirstChildElement("system-out")->GetText();
  EXPECT_EQ(out.find("inner\n!!! Test \"inner\" failed\n(finished: inner, in "), 0u) << out;
  EXPECT_EQ(c->NextSiblingElement("testcase"), nullptr);
  std::filesystem::remove_all(dir);
}
