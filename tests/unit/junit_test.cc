#include "test_driver/junit.h"

#include <gtest/gtest.h>
#include <tinyxml2.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>
#include <unistd.h>

namespace {

// A clock the test moves by hand.
struct FakeClock {
  std::chrono::steady_clock::time_point now{};
  td::JUnitReport::TimeSource fn() {
    return [this] { return now; };
  }
  void advance(double seconds) {
    now += std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(seconds));
  }
};

struct Parsed {
  tinyxml2::XMLDocument doc;
  const tinyxml2::XMLElement* suites = nullptr;
  const tinyxml2::XMLElement* suite = nullptr;
  std::vector<const tinyxml2::XMLElement*> cases;
};

void parse(const std::string& xml, Parsed& p) {
  ASSERT_EQ(p.doc.Parse(xml.c_str()), tinyxml2::XML_SUCCESS) << p.doc.ErrorStr() << "\n" << xml;
  p.suites = p.doc.FirstChildElement("testsuites");
  ASSERT_NE(p.suites, nullptr);
  p.suite = p.suites->FirstChildElement("testsuite");
  ASSERT_NE(p.suite, nullptr);
  for (auto* c = p.suite->FirstChildElement("testcase"); c; c = c->NextSiblingElement("testcase")) p.cases.push_back(c);
}

TEST(JUnitReport, NoSubtestsGivesOneMainCase) {
  FakeClock clock;
  td::JUnitReport report("suite", clock.fn());
  report.add_output("hello");
  clock.advance(2.5);
  Parsed p;
  parse(report.to_xml(), p);
  ASSERT_EQ(p.cases.size(), 1u);
  EXPECT_STREQ(p.cases[0]->Attribute("name"), "main");
  EXPECT_STREQ(p.cases[0]->Attribute("classname"), "suite");
  EXPECT_STREQ(p.cases[0]->Attribute("time"), "2.500");
  EXPECT_STREQ(p.cases[0]->FirstChildElement("system-out")->GetText(), "hello\n");
  EXPECT_EQ(p.cases[0]->FirstChildElement("failure"), nullptr);
  EXPECT_STREQ(p.suites->Attribute("tests"), "1");
  EXPECT_STREQ(p.suites->Attribute("failures"), "0");
  EXPECT_STREQ(p.suite->Attribute("name"), "suite");
  EXPECT_STREQ(p.suite->Attribute("time"), "2.500");
  EXPECT_NE(p.suite->Attribute("timestamp"), nullptr);
  EXPECT_NE(p.suite->Attribute("hostname"), nullptr);
  EXPECT_STREQ(p.suite->Attribute("skipped"), "0");
}

TEST(JUnitReport, NestedSubtestsTimesAndFailure) {
  FakeClock clock;
  td::JUnitReport report("suite", clock.fn());
  report.begin_case("outer");
  clock.advance(1);
  report.begin_case("inner");
  report.add_output("inside");
  clock.advance(2);
  report.end_case();
  clock.advance(0.25);
  report.end_case();
  report.begin_case("broken");
  report.add_output("!!! it broke", /*is_error=*/true);
  report.record_problem({td::JUnitProblem::Kind::failure, "command `false` failed", "RequestedAssertionFailed",
                         "Traceback ...\n"});
  report.record_problem({td::JUnitProblem::Kind::failure, "second", "Other", ""});
  clock.advance(0.5);
  report.end_case();
  EXPECT_FALSE(report.in_case());

  Parsed p;
  parse(report.to_xml(), p);
  ASSERT_EQ(p.cases.size(), 3u);  // no main: there are subtests and main did not fail
  EXPECT_STREQ(p.cases[0]->Attribute("name"), "outer");
  EXPECT_STREQ(p.cases[0]->Attribute("time"), "3.250");
  EXPECT_STREQ(p.cases[1]->Attribute("name"), "outer / inner");
  EXPECT_STREQ(p.cases[1]->Attribute("time"), "2.000");
  EXPECT_STREQ(p.cases[1]->FirstChildElement("system-out")->GetText(), "inside\n");
  EXPECT_EQ(p.cases[0]->FirstChildElement("system-out"), nullptr);
  EXPECT_STREQ(p.cases[2]->Attribute("name"), "broken");
  auto* failure = p.cases[2]->FirstChildElement("failure");
  ASSERT_NE(failure, nullptr);
  EXPECT_STREQ(failure->Attribute("message"), "command `false` failed");
  EXPECT_STREQ(failure->Attribute("type"), "RequestedAssertionFailed");
  EXPECT_STREQ(failure->GetText(), "Traceback ...\nthen: Other: second");
  EXPECT_STREQ(p.cases[2]->FirstChildElement("system-err")->GetText(), "!!! it broke\n");
  EXPECT_STREQ(p.suite->Attribute("tests"), "3");
  EXPECT_STREQ(p.suite->Attribute("failures"), "1");
  EXPECT_STREQ(p.suite->Attribute("errors"), "0");
}

TEST(JUnitReport, FailureOutsideSubtestsListsMain) {
  td::JUnitReport report;
  report.begin_case("fine");
  report.end_case();
  report.record_problem({td::JUnitProblem::Kind::error, "interrupted", "KeyboardInterrupt", ""});
  Parsed p;
  parse(report.to_xml(), p);
  ASSERT_EQ(p.cases.size(), 2u);
  EXPECT_STREQ(p.cases[0]->Attribute("name"), "main");
  EXPECT_STREQ(p.cases[0]->FirstChildElement("error")->Attribute("message"), "interrupted");
  EXPECT_STREQ(p.suite->Attribute("name"), "NixOS integration test");
  EXPECT_STREQ(p.suite->Attribute("errors"), "1");
  EXPECT_STREQ(p.suite->Attribute("failures"), "0");
}

TEST(JUnitReport, OpenCasesCountUntilNowAndTextIsSanitized) {
  FakeClock clock;
  td::JUnitReport report("s <&> \"q\"", clock.fn());
  report.begin_case("never ends \x01");
  report.add_output(std::string("bad \xff bytes \x1b[0m", 17));
  clock.advance(4);
  Parsed p;
  parse(report.to_xml(), p);
  ASSERT_EQ(p.cases.size(), 1u);
  EXPECT_STREQ(p.cases[0]->Attribute("name"), "never ends ");
  EXPECT_STREQ(p.cases[0]->Attribute("time"), "4.000");
  EXPECT_STREQ(p.suite->Attribute("name"), "s <&> \"q\"");
  EXPECT_STREQ(p.cases[0]->FirstChildElement("system-out")->GetText(), "bad \xef\xbf\xbd bytes [0m\n");
}

TEST(JUnitReport, OutputIsBounded) {
  td::JUnitReport report;
  std::string line(1 << 20, 'x');
  for (int i = 0; i < 10; ++i) report.add_output(line);
  report.add_output("after the cut");
  std::string xml = report.to_xml();
  EXPECT_LT(xml.size(), td::JUnitReport::kMaxOutputBytes + 4096);
  EXPECT_NE(xml.find("[output truncated]"), std::string::npos);
  EXPECT_EQ(xml.find("after the cut"), std::string::npos);
}

TEST(JUnitReport, WritesAtomicallyAndConcurrently) {
  td::JUnitReport report;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) report.add_output("m # serial line");
    });
  report.begin_case("a");
  report.end_case();
  for (auto& t : threads) t.join();
  auto dir = std::filesystem::temp_directory_path() / ("td_junit_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto path = dir / "report.xml";
  report.write(path);
  tinyxml2::XMLDocument doc;
  ASSERT_EQ(doc.LoadFile(path.c_str()), tinyxml2::XML_SUCCESS);
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir), std::filesystem::directory_iterator()), 1);
  EXPECT_THROW(report.write(dir / "missing" / "report.xml"), std::exception);
  std::filesystem::remove_all(dir);
}

}  // namespace
