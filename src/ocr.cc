#include "test_driver/ocr.h"

#include <fmt/format.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "test_driver/errors.h"
#include "test_driver/interrupt.h"

extern char** environ;

namespace td {
namespace {

bool on_path(const std::string& tool) { return !Process::find_program(tool).empty(); }

// ImageMagick 7 is `magick`, Debian's 6 only `convert`.
std::vector<std::string> magick_command() {
  if (on_path("magick")) return {"magick", "convert"};
  return {"convert"};
}

// The environment with OMP_THREAD_LIMIT=1: the jobs run side by side, and
// tesseract's own threads would only contend with them (tesseract#3109).
std::vector<std::string> single_threaded_environment() {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e)
    if (std::string_view(*e).rfind("OMP_THREAD_LIMIT=", 0) != 0) env.emplace_back(*e);
  env.emplace_back("OMP_THREAD_LIMIT=1");
  return env;
}

// The processed renderings are resampled to four times the size: slow.
// They yield the CPU to the reads of fresh screenshots and to the guest.
constexpr int kRenderingNiceness = 10;

}  // namespace

std::vector<std::string> tesseract_argv(const std::filesystem::path& image) {
  return {"tesseract", image.string(), "-", "--oem", "3", "-c", "debug_file=/dev/null", "--psm", "11"};
}

std::vector<std::string> magick_argv(const std::filesystem::path& screenshot, const std::filesystem::path& rendering,
                                     bool negate) {
  std::vector<std::string> argv = magick_command();
  for (const char* a : {"-filter", "Catrom", "-density", "72", "-resample", "300", "-contrast", "-normalize",
                        "-despeckle", "-type", "grayscale", "-sharpen", "1", "-posterize", "3"})
    argv.emplace_back(a);
  if (negate) argv.emplace_back("-negate");
  for (const char* a : {"-gamma", "100", "-blur", "1x65535"}) argv.emplace_back(a);
  argv.push_back(screenshot.string());
  argv.push_back(rendering.string());
  return argv;
}

struct OcrRun::Job {
  enum class Kind { kAsIs, kFresh, kRendering };
  Kind kind = Kind::kAsIs;
  bool negate = false;
  std::filesystem::path screenshot;
  std::filesystem::path rendering;  // kRendering: ImageMagick's output, then tesseract's input
  bool reading = false;             // tesseract runs (for a rendering: ImageMagick is done)
  std::unique_ptr<Process> process;
  std::string program;
  std::string output;
  std::string error;
  bool output_open = false;
  bool error_open = false;
  bool finished = false;
};

OcrRun::OcrRun(TakeScreenshot take_screenshot, Options options)
    : take_screenshot_(std::move(take_screenshot)), options_(std::move(options)) {
  if (!on_path("tesseract")) throw Error("OCR requested but `tesseract` is not available (enableOCR is false)");
  if (options_.processed_variants && !on_path("convert") && !on_path("magick"))
    throw Error("OCR requested but ImageMagick (`magick` or `convert`) is not available");
  std::filesystem::path first = options_.work_dir / "ocr-0.ppm";
  files_.push_back(first);
  take_screenshot_(first);
  ++screenshots_;
  last_fresh_ = Clock::now();

  auto as_is = std::make_unique<Job>();
  as_is->screenshot = first;
  start_tesseract(*as_is, first);
  jobs_.push_back(std::move(as_is));
  if (!options_.processed_variants) return;
  for (bool negate : {false, true}) {
    auto job = std::make_unique<Job>();
    job->kind = Job::Kind::kRendering;
    job->negate = negate;
    job->screenshot = first;
    job->rendering = options_.work_dir / (negate ? "ocr-0.negative.png" : "ocr-0.positive.png");
    files_.push_back(job->rendering);
    Process::Options magick;
    magick.argv = magick_argv(first, job->rendering, negate);
    magick.capture_stderr_apart = true;
    magick.niceness = kRenderingNiceness;
    job->program = "ImageMagick";
    job->process = Process::spawn(magick);
    job->output_open = job->error_open = true;
    jobs_.push_back(std::move(job));
  }
}

OcrRun::~OcrRun() {
  for (auto& job : jobs_) job->process.reset();  // kills the group, reaps it
  std::error_code ignored;
  for (const auto& file : files_) std::filesystem::remove(file, ignored);
}

void OcrRun::start_tesseract(Job& job, const std::filesystem::path& image) {
  Process::Options tesseract;
  tesseract.argv = tesseract_argv(image);
  tesseract.env = single_threaded_environment();
  tesseract.capture_stderr_apart = true;
  if (job.kind == Job::Kind::kRendering) tesseract.niceness = kRenderingNiceness;
  job.program = "tesseract";
  job.reading = true;
  job.output.clear();
  job.error.clear();
  job.process = Process::spawn(tesseract);
  job.output_open = job.error_open = true;
}

bool OcrRun::others_running() const {
  return std::any_of(jobs_.begin(), jobs_.end(),
                     [](const auto& job) { return !job->finished && job->kind != Job::Kind::kFresh; });
}

void OcrRun::take_fresh_screenshot() {
  std::filesystem::path shot = options_.work_dir / fmt::format("ocr-{}.ppm", screenshots_);
  files_.push_back(shot);
  last_fresh_ = Clock::now();
  take_screenshot_(shot);
  ++screenshots_;
  auto job = std::make_unique<Job>();
  job->kind = Job::Kind::kFresh;
  job->screenshot = shot;
  start_tesseract(*job, shot);
  jobs_.push_back(std::move(job));
}

void OcrRun::finish(Job& job) {
  const Process& process = *job.process;
  if (!WIFEXITED(process.status()) || WEXITSTATUS(process.status()) != 0) {
    std::string what = job.kind == Job::Kind::kRendering && !job.reading
                           ? fmt::format("Image processing ({} rendering) failed", job.negate ? "negative" : "positive")
                           : "OCR failed";
    throw Error(fmt::format("{}: {} ended with {}: {:.300}", what, job.program, process.describe_status(),
                            job.error.empty() ? job.output : job.error));
  }
  if (job.kind == Job::Kind::kRendering && !job.reading) {
    start_tesseract(job, job.rendering);
    return;
  }
  job.finished = true;
  job.process.reset();
  ready_.push_back(std::move(job.output));
  if (job.kind == Job::Kind::kFresh) {
    std::error_code ignored;
    std::filesystem::remove(job.screenshot, ignored);
  }
}

std::optional<std::string> OcrRun::next_text(Deadline deadline) {
  for (;;) {
    if (!ready_.empty()) {
      std::string text = std::move(ready_.front());
      ready_.pop_front();
      return text;
    }
    bool fresh_running = std::any_of(jobs_.begin(), jobs_.end(), [](const auto& job) {
      return !job->finished && job->kind == Job::Kind::kFresh;
    });
    bool others = others_running();
    if (!others && !fresh_running) return std::nullopt;
    if (deadline.passed()) return std::nullopt;
    interrupt::check();

    Deadline wake = deadline;
    if (options_.fresh_every && others && !fresh_running) {
      Deadline due = Deadline::at(last_fresh_ + options_.fresh_every->clock_duration());
      if (due.passed()) {
        take_fresh_screenshot();
        continue;
      }
      wake = wake.sooner(due);
    }

    std::vector<pollfd> fds{{interrupt::read_fd(), POLLIN, 0}};
    std::vector<std::pair<Job*, int>> owners{{nullptr, 0}};  // 0: output, 1: error, 2: exit
    for (auto& job : jobs_) {
      if (job->finished) continue;
      if (job->output_open) {
        fds.push_back({job->process->output_fd(), POLLIN, 0});
        owners.emplace_back(job.get(), 0);
      }
      if (job->error_open) {
        fds.push_back({job->process->error_fd(), POLLIN, 0});
        owners.emplace_back(job.get(), 1);
      }
      if (!job->output_open && !job->error_open) {
        fds.push_back({job->process->pidfd(), POLLIN, 0});
        owners.emplace_back(job.get(), 2);
      }
    }
    auto left = std::chrono::ceil<std::chrono::milliseconds>(wake.remaining().clock_duration()).count();
    int r = ::poll(fds.data(), fds.size(), static_cast<int>(std::clamp<long long>(left, 0, 1000)));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) throw Error(fmt::format("OCR: poll failed: {}", std::strerror(errno)));
    for (size_t i = 1; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      auto [job, which] = owners[i];
      if (which == 2) {
        job->process->wait(Clock::now());
        finish(*job);
        continue;
      }
      char buffer[65536];
      ssize_t n = ::read(fds[i].fd, buffer, sizeof buffer);
      if (n > 0) {
        (which == 0 ? job->output : job->error).append(buffer, static_cast<size_t>(n));
      } else if (n == 0 || errno != EAGAIN) {
        (which == 0 ? job->output_open : job->error_open) = false;
      }
    }
  }
}

}  // namespace td
