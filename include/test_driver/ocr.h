// OcrRun: the text on a machine's screen, read by several OCR jobs at once,
// as upstream's newest ocr.py does with threads, here as child processes
// watched by one poll loop. tesseract reads the screenshot as it is and, with
// the processed variants, ImageMagick's positive and negative renderings of
// it (which take several times longer and so run at a lower priority). While
// those run, a fresh screenshot is read as it is every `fresh_every`, so that
// a wait sees text that appears meanwhile. Texts come in the order their jobs
// finish; the destructor kills whatever still runs, so a wait that has its
// match stops the rest at once. Host tools run as argument vectors.
#pragma once

#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "test_driver/deadline.h"
#include "test_driver/duration.h"
#include "test_driver/process.h"

namespace td {

class OcrRun {
 public:
  struct Options {
    bool processed_variants = true;
    // None: only the first screenshot is read.
    std::optional<Duration> fresh_every = std::nullopt;
    // Screenshots and renderings go here (and are removed).
    std::filesystem::path work_dir = {};
  };
  // Writes a screenshot (PPM) to the path.
  using TakeScreenshot = std::function<void(const std::filesystem::path&)>;

  // Takes the first screenshot and starts its jobs. Throws td::Error when
  // tesseract (or, for the variants, ImageMagick) is not installed.
  OcrRun(TakeScreenshot take_screenshot, Options options);
  ~OcrRun();
  OcrRun(const OcrRun&) = delete;
  OcrRun& operator=(const OcrRun&) = delete;

  // The next text a job read, waiting for it until the deadline; nullopt
  // when every job has finished or the deadline passed. Throws td::Error
  // naming the tool when one fails, td::Interrupted on Ctrl-C.
  std::optional<std::string> next_text(Deadline deadline);
  // How many screenshots were taken (the first and the fresh ones).
  int screenshots_taken() const { return screenshots_; }

 private:
  struct Job;
  void start_tesseract(Job& job, const std::filesystem::path& image);
  void take_fresh_screenshot();
  void finish(Job& job);
  bool others_running() const;

  TakeScreenshot take_screenshot_;
  Options options_;
  std::vector<std::unique_ptr<Job>> jobs_;
  std::deque<std::string> ready_;
  std::vector<std::filesystem::path> files_;
  int screenshots_ = 0;
  Clock::time_point last_fresh_;
};

// The argument vectors, as upstream runs them (oem 3 where upstream has 2:
// Debian's models lack the legacy engine that 2 needs).
std::vector<std::string> tesseract_argv(const std::filesystem::path& image);
std::vector<std::string> magick_argv(const std::filesystem::path& screenshot, const std::filesystem::path& rendering,
                                     bool negate);

}  // namespace td
