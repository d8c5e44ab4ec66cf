#include "test_driver/serial_reader.h"

#include <gtest/gtest.h>
#include <tinyxml2.h>

#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "channel_test_support.h"
#include "test_driver/logger.h"
#include "test_driver/utf8.h"

using namespace std::chrono_literals;
using td_test::Stopwatch;
using td_test::UniqueFd;
using Lines = std::vector<std::string>;

namespace {

// A machine's console: the write end of a pipe the reader reads, and a
// logger of its own writing an XML log to a private directory.
class SerialReaderTest : public ::testing::Test {
 protected:
  SerialReaderTest() {
    log.set_print_serial(false);  // the XML log still gets every line
    log.open(log_path().string());
    auto [read_end, write_end] = td_test::make_pipe();
    console = std::move(write_end);
    reader = std::make_unique<td::SerialReader>("server", log, read_end.get());
    // read_end closes here: the reader has its own copy.
  }
  ~SerialReaderTest() override { reader.reset(); }

  std::filesystem::path log_path() const { return dir.path() / "log.xml"; }
  void prints(std::string_view text) { td_test::write_all(console.get(), text); }
  // Waits (at most 5 s) until the reader has `n` lines or the output ended.
  void wait_for_lines(size_t n) {
    auto until = td::Clock::now() + 5s;
    while (reader->size() < n && !reader->ended() && td::Clock::now() < until)
      reader->wait_for_more(reader->size(), until);
    ASSERT_GE(reader->size(), n) << "the reader has " << reader->size() << " lines";
  }
  // Ends the output and waits for the reader to see the end.
  void end_output() {
    console.reset();
    reader->drain(5000ms);
    ASSERT_TRUE(reader->ended());
  }
  // The serial lines of the XML log: {machine, text}.
  std::vector<std::pair<std::string, std::string>> logged_lines() {
    reader->stop();
    log.close();
    tinyxml2::XMLDocument doc;
    std::vector<std::pair<std::string, std::string>> lines;
    if (doc.LoadFile(log_path().c_str()) != tinyxml2::XML_SUCCESS) {
      ADD_FAILURE() << doc.ErrorStr();
      return lines;
    }
    for (auto* l = doc.FirstChildElement("logfile")->FirstChildElement("line"); l; l = l->NextSiblingElement("line")) {
      if (l->Attribute("type", "serial"))
        lines.emplace_back(l->Attribute("machine") ? l->Attribute("machine") : "", l->GetText() ? l->GetText() : "");
    }
    return lines;
  }

  td_test::TempDir dir;
  td::Logger log;
  UniqueFd console;
  std::unique_ptr<td::SerialReader> reader;
};

}  // namespace

TEST_F(SerialReaderTest, LinesAreKeptAndLogged) {
  prints("[    0.000000] Linux version 6.6\n");
  prints("<<< Welcome to NixOS >>>\n");
  wait_for_lines(2);
  EXPECT_EQ(reader->recent(10), (Lines{"[    0.000000] Linux version 6.6", "<<< Welcome to NixOS >>>"}));
  EXPECT_FALSE(reader->ended());
  end_output();
  EXPECT_EQ(logged_lines(), (std::vector<std::pair<std::string, std::string>>{
                                {"server", "[    0.000000] Linux version 6.6"}, {"server", "<<< Welcome to NixOS >>>"}}));
}

TEST_F(SerialReaderTest, LinesAreCleaned) {
  prints("crlf\r\n");
  prints("car\rriage\n");
  prints("trailing space \t \v\f\n");
  prints("   leading kept\n");
  prints("bad \xff byte\n");
  prints("cut \xe2\x82\n");
  prints("\n");
  prints("\r\n");
  prints("tab\tinside\n");
  end_output();
  EXPECT_EQ(reader->recent(100), (Lines{"crlf", "carriage", "trailing space", "   leading kept",
                                        "bad \xef\xbf\xbd byte", td::to_valid_utf8("cut \xe2\x82"), "", "",
                                        "tab\tinside"}));
}

TEST_F(SerialReaderTest, ALineSplitAcrossReadsIsOneLine) {
  prints("hel");
  std::this_thread::sleep_for(30ms);
  prints("lo caf\xc3");  // a character cut in two
  std::this_thread::sleep_for(30ms);
  prints("\xa9\r");
  std::this_thread::sleep_for(30ms);
  prints("\nnext\n");
  wait_for_lines(2);
  EXPECT_EQ(reader->recent(2), (Lines{"hello caf\xc3\xa9", "next"}));
}

TEST_F(SerialReaderTest, ManyLinesAtOnceAreKeptInOrder) {
  std::string text;
  for (int i = 0; i < 20000; ++i) text += "line " + std::to_string(i) + "\n";
  std::thread writer([&] { prints(text); });  // more than the pipe holds
  wait_for_lines(20000);
  writer.join();
  ASSERT_EQ(reader->size(), 20000u);
  EXPECT_EQ(reader->all(), text);
  end_output();
  auto logged = logged_lines();
  ASSERT_EQ(logged.size(), 20000u);
  EXPECT_EQ(logged.front().second, "line 0");
  EXPECT_EQ(logged.back().second, "line 19999");
}

TEST_F(SerialReaderTest, ALastLineWithoutNewlineIsKeptAtTheEnd) {
  prints("one\ntail without newline");
  wait_for_lines(1);
  EXPECT_EQ(reader->recent(5), Lines{"one"});  // not yet a line
  end_output();
  EXPECT_EQ(reader->recent(5), (Lines{"one", "tail without newline"}));
  EXPECT_EQ(reader->all(), "one\ntail without newline\n");
  auto logged = logged_lines();
  ASSERT_EQ(logged.size(), 2u);
  EXPECT_EQ(logged[1].second, "tail without newline");
}

TEST_F(SerialReaderTest, WaitForMoreWakesOnANewLine) {
  prints("first\n");
  wait_for_lines(1);
  std::thread guest([&] {
    std::this_thread::sleep_for(100ms);
    prints("second\n");
  });
  Stopwatch watch;
  EXPECT_EQ(reader->wait_for_more(1, td::Clock::now() + 5s), 2u);
  EXPECT_GE(watch.seconds(), 0.09);  // it waited for it
  EXPECT_LT(watch.seconds(), 4.0);   // and woke when it came
  EXPECT_FALSE(reader->ended());
  guest.join();
}

TEST_F(SerialReaderTest, WaitForMoreWakesAtTheEnd) {
  std::thread guest([&] {
    std::this_thread::sleep_for(100ms);
    console.reset();
  });
  Stopwatch watch;
  EXPECT_EQ(reader->wait_for_more(0, td::Clock::now() + 5s), 0u);
  EXPECT_GE(watch.seconds(), 0.09);
  EXPECT_LT(watch.seconds(), 4.0);
  guest.join();
  EXPECT_TRUE(reader->ended());
  // Once ended, it returns at once.
  Stopwatch again;
  EXPECT_EQ(reader->wait_for_more(0, td::Clock::now() + 5s), 0u);
  EXPECT_LT(again.seconds(), 1.0);
}

TEST_F(SerialReaderTest, WaitForMoreReturnsAtItsDeadline) {
  prints("only\n");
  wait_for_lines(1);
  Stopwatch watch;
  EXPECT_EQ(reader->wait_for_more(1, td::Clock::now() + 100ms), 1u);
  EXPECT_GE(watch.seconds(), 0.099);
  EXPECT_LT(watch.seconds(), 2.0);
  // With fewer lines than it has, it returns at once.
  Stopwatch at_once;
  EXPECT_EQ(reader->wait_for_more(0, td::Clock::now() + 5s), 1u);
  EXPECT_LT(at_once.seconds(), 1.0);
}

TEST_F(SerialReaderTest, RecentJoinAndAll) {
  prints("a\nb\nc\nd\n");
  wait_for_lines(4);
  EXPECT_EQ(reader->size(), 4u);
  EXPECT_EQ(reader->recent(2), (Lines{"c", "d"}));
  EXPECT_EQ(reader->recent(4), (Lines{"a", "b", "c", "d"}));
  EXPECT_EQ(reader->recent(100), (Lines{"a", "b", "c", "d"}));
  EXPECT_EQ(reader->recent(0), Lines{});
  EXPECT_EQ(reader->join(1, 3), "b\nc");
  EXPECT_EQ(reader->join(0, 4), "a\nb\nc\nd");
  EXPECT_EQ(reader->join(2, 100), "c\nd");
  EXPECT_EQ(reader->join(3, 3), "");
  EXPECT_EQ(reader->join(7, 9), "");
  EXPECT_EQ(reader->all(), "a\nb\nc\nd\n");
}

TEST_F(SerialReaderTest, NothingReadIsNothingKept) {
  end_output();
  EXPECT_EQ(reader->size(), 0u);
  EXPECT_EQ(reader->all(), "");
  EXPECT_EQ(reader->recent(3), Lines{});
  EXPECT_TRUE(logged_lines().empty());
}

TEST_F(SerialReaderTest, StopEndsTheReaderWhileTheOutputIsOpen) {
  prints("before stop\n");
  wait_for_lines(1);
  Stopwatch watch;
  reader->stop();
  EXPECT_LT(watch.seconds(), 2.0);
  reader->stop();  // idempotent
  EXPECT_EQ(reader->recent(1), Lines{"before stop"});
}

TEST_F(SerialReaderTest, DrainWaitsAtMostItsLimit) {
  Stopwatch watch;
  reader->drain(100ms);
  EXPECT_GE(watch.seconds(), 0.099);
  EXPECT_LT(watch.seconds(), 2.0);
  EXPECT_FALSE(reader->ended());
}
