#include "test_driver/logger.h"

#include <gtest/gtest.h>
#include <tinyxml2.h>

#include <filesystem>
#include <thread>

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
