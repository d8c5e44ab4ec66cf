#include "test_driver/ocr.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <set>
#include <thread>

#include "test_driver/errors.h"

// Real tesseract and ImageMagick on screens drawn by ImageMagick: black text
// on white, as an xterm shows it.
namespace {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/td-ocr-test-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path); }
};

// Draws `text` into a PPM the size of a small screen.
void draw_screen(const std::string& text, const fs::path& ppm) {
  td::Process::Options convert;
  convert.argv = {"convert", "-size", "640x200", "xc:white", "-font", "DejaVu-Sans-Mono", "-pointsize", "32",
                  "-fill", "black", "-annotate", "+20+100", text, "ppm:" + ppm.string()};
  auto result = td::Process::run(convert, std::chrono::seconds(60));
  ASSERT_EQ(result.exit_code(), 0) << result.output;
}

// The pids of this process's children running `name` (the OCR jobs).
std::set<pid_t> children_named(const std::string& name) {
  std::set<pid_t> found;
  std::string me = std::to_string(::getpid());
  for (const auto& entry : fs::directory_iterator("/proc")) {
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    auto close = line.rfind(')');
    auto open = line.find('(');
    if (close == std::string::npos || open == std::string::npos) continue;
    std::string comm = line.substr(open + 1, close - open - 1);
    std::istringstream rest(line.substr(close + 2));
    std::string state, ppid;
    rest >> state >> ppid;
    if (ppid == me && comm == name && state != "Z") found.insert(std::stoi(entry.path().filename()));
  }
  return found;
}

}  // namespace

TEST(OcrRun, ReadsTheScreenAsItIs) {
  TempDir dir;
  td::OcrRun run([](const fs::path& ppm) { draw_screen("hello 4711", ppm); },
                 {.processed_variants = false, .work_dir = dir.path});
  auto text = run.next_text(td::Deadline::after(60.0));
  ASSERT_TRUE(text);
  EXPECT_NE(text->find("hello"), std::string::npos) << *text;
  EXPECT_FALSE(run.next_text(td::Deadline::after(60.0)));  // one job, one text
  EXPECT_EQ(run.screenshots_taken(), 1);
}

TEST(OcrRun, TheProcessedVariantsAddTwoTexts) {
  TempDir dir;
  td::OcrRun run([](const fs::path& ppm) { draw_screen("variants 42", ppm); },
                 {.processed_variants = true, .work_dir = dir.path});
  std::vector<std::string> texts;
  auto deadline = td::Deadline::after(120.0);
  while (auto text = run.next_text(deadline)) texts.push_back(*text);
  ASSERT_EQ(texts.size(), 3u);
  int matched = 0;
  for (const auto& t : texts) matched += t.find("ariants 42") != std::string::npos;  // "Variants" too
  EXPECT_GE(matched, 2) << texts[0] << "|" << texts[1] << "|" << texts[2];
}

TEST(OcrRun, FreshScreenshotsAreReadWhileTheVariantsRun) {
  // The screen changes after the first screenshot: only a fresh one shows
  // the new text, and it arrives before the slow renderings are read.
  TempDir dir;
  int taken = 0;
  td::OcrRun run(
      [&](const fs::path& ppm) { draw_screen(taken++ == 0 ? "before" : "arrived 99", ppm); },
      {.processed_variants = true, .fresh_every = td::Duration(0.2), .work_dir = dir.path});
  auto deadline = td::Deadline::after(120.0);
  bool seen = false;
  while (auto text = run.next_text(deadline)) {
    if (text->find("arrived") != std::string::npos) {
      seen = true;
      break;
    }
  }
  EXPECT_TRUE(seen);
  EXPECT_GE(run.screenshots_taken(), 2);
}

TEST(OcrRun, EndingTheRunKillsTheJobsStillReading) {
  TempDir dir;
  {
    td::OcrRun run([](const fs::path& ppm) { draw_screen("stop early", ppm); },
                   {.processed_variants = true, .work_dir = dir.path});
    auto text = run.next_text(td::Deadline::after(60.0));  // the screenshot as it is: first
    ASSERT_TRUE(text);
    // The renderings (4x resampled) are still running.
    EXPECT_FALSE(children_named("convert").empty() && children_named("tesseract").empty());
  }
  EXPECT_TRUE(children_named("convert").empty());
  EXPECT_TRUE(children_named("tesseract").empty());
  EXPECT_TRUE(fs::is_empty(dir.path));  // its screenshots and renderings are gone
}

TEST(OcrRun, AFailingToolIsNamed) {
  TempDir dir;
  td::OcrRun run([](const fs::path& ppm) { std::ofstream(ppm) << "P6\nnot an image"; },
                 {.processed_variants = false, .work_dir = dir.path});
  try {
    run.next_text(td::Deadline::after(60.0));
    FAIL() << "a broken screenshot was read";
  } catch (const td::Error& e) {
    EXPECT_NE(std::string(e.what()).find("OCR failed: tesseract ended with exit code"), std::string::npos)
        << e.what();
  }
}

TEST(OcrRun, TheDeadlineEndsTheWait) {
  TempDir dir;
  td::OcrRun run([](const fs::path& ppm) { draw_screen("slow", ppm); },
                 {.processed_variants = true, .work_dir = dir.path});
  auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(run.next_text(td::Deadline::after(0.01)));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}
