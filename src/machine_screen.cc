// Machine: the screen. Screenshots through QEMU's screendump and netpbm's
// pnmtopng, text through OcrRun (ImageMagick and tesseract), screen matching
// against reference PNGs through image.h, all run as argument vectors (no
// host shell sees a file name).
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <regex>

#include "test_driver/errors.h"
#include "test_driver/host_files.h"
#include "test_driver/machine.h"
#include "test_driver/ocr.h"
#include "test_driver/process.h"
#include "test_driver/retry.h"

namespace td {
namespace {

constexpr auto kToolTimeout = std::chrono::seconds(120);

// QEMU's screendump writes the file itself; the path goes on the monitor's
// command line, so it must not be one the monitor would split.
void check_monitor_path(const std::filesystem::path& path) {
  for (char c : path.string())
    if (c == '\n' || c == ' ' || c == '"' || c == '\'')
      throw Error(fmt::format("cannot take a screenshot through the directory {}: QEMU's monitor cannot take paths "
                              "with spaces or quotes; set TMPDIR to a plain path",
                              path.parent_path().string()));
}

// Width and height of a PNG file, or nullopt when it is not a PNG.
std::optional<std::pair<uint32_t, uint32_t>> png_size(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  unsigned char header[24];
  if (!in.read(reinterpret_cast<char*>(header), sizeof header)) return std::nullopt;
  static const unsigned char signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (std::memcmp(header, signature, 8) != 0 || std::memcmp(header + 12, "IHDR", 4) != 0) return std::nullopt;
  auto be32 = [&](int at) {
    return (uint32_t(header[at]) << 24) | (uint32_t(header[at + 1]) << 16) | (uint32_t(header[at + 2]) << 8) |
           uint32_t(header[at + 3]);
  };
  return std::make_pair(be32(16), be32(20));
}

}  // namespace

std::filesystem::path Machine::screenshot_path(const std::string& filename) const {
  // As upstream's newest driver: a name without "." gets ".png", one without "/" goes to the
  // output directory ("x11-screen" -> OUT/x11-screen.png).
  std::string with_extension = filename.find('.') == std::string::npos ? filename + ".png" : filename;
  return with_extension.find('/') == std::string::npos ? out_dir() / with_extension
                                                       : std::filesystem::path(with_extension);
}

void Machine::screenshot(const std::string& filename) {
  std::filesystem::path target = screenshot_path(filename);
  auto nest = nested(fmt::format("making screenshot {}", target.string()), {{"image", target.filename().string()}});
  std::filesystem::path ppm = state_dir() / "screenshot.ppm";
  std::filesystem::remove(ppm);
  screendump(ppm);
  if (!std::filesystem::exists(ppm)) throw Error(fmt::format("machine '{}': QEMU wrote no screenshot", name()));

  // The PNG comes back through a pipe and is written here, so that a full
  // output directory is named as such (pnmtopng says only "Write Error").
  Process::Options convert;
  convert.argv = {"pnmtopng", ppm.string()};
  convert.capture_stderr_apart = true;
  Process::Result result = Process::run(convert, kToolTimeout);
  std::filesystem::remove(ppm);
  if (!result.exited_normally())
    throw Error(fmt::format("Cannot convert screenshot: pnmtopng failed ({}): {}", result.exit_code(), result.error));
  try {
    write_host_file(target, result.output);
  } catch (const Error& e) {
    throw Error(fmt::format("cannot save the screenshot: {}", e.what()));
  }
  auto size = png_size(target);
  if (!size || size->first == 0 || size->second == 0)
    throw Error(fmt::format("Cannot convert screenshot: {} is not a valid PNG", target.string()));
  rootlog().record_screenshot(name(), target);
}

void Machine::screendump(const std::filesystem::path& ppm) {
  try {
    qmp_command("screendump", Json::Object{{"filename", ppm.string()}});
  } catch (const MachineError&) {
    // No QMP (a stand-in QEMU): the human monitor, which cannot take every path.
    check_monitor_path(ppm);
    send_monitor_command("screendump " + ppm.string());
  }
}

Image Machine::screen_image(const std::optional<ImageRegion>& region) {
  std::filesystem::path ppm = state_dir() / "screen-match.ppm";
  std::filesystem::remove(ppm);
  screendump(ppm);
  if (!std::filesystem::exists(ppm)) throw Error(fmt::format("machine '{}': QEMU wrote no screen dump", name()));
  Image screen;
  try {
    screen = Image::read_netpbm(ppm);
  } catch (...) {
    std::filesystem::remove(ppm);
    throw;
  }
  std::filesystem::remove(ppm);
  return region ? screen.crop(*region, "the screen") : screen;
}

namespace {

std::string screen_name(const std::optional<ImageRegion>& region) {
  return region ? fmt::format("the screen region {}", region->to_string()) : "the screen";
}

}  // namespace

bool Machine::screen_matches(const std::filesystem::path& reference, const std::optional<ImageRegion>& region,
                             const ImageTolerance& tolerance) {
  auto nest = nested(fmt::format("comparing {} with {}", screen_name(region), reference.string()));
  Image expected = Image::read_png(reference);
  ImageComparison result =
      compare_images(screen_image(region), expected, tolerance, screen_name(region), reference.string());
  log(fmt::format("{} (threshold {}, channel tolerance {}): {}", result.describe(), tolerance.threshold,
                  tolerance.channel, result.matches ? "a match" : "no match"));
  return result.matches;
}

void Machine::wait_for_screen_match(const std::filesystem::path& reference, const std::optional<ImageRegion>& region,
                                    const ImageTolerance& tolerance, Duration timeout) {
  auto nest = nested(fmt::format("waiting for {} to match {}", screen_name(region), reference.string()));
  Image expected = Image::read_png(reference);
  std::optional<ImageComparison> best;
  std::string saved;
  auto start = Clock::now();
  bool timed_out = false;
  retry(
      [&](bool last_try) {
        Image actual = screen_image(region);
        ImageComparison result = compare_images(actual, expected, tolerance, screen_name(region), reference.string());
        if (result.matches) return true;
        if (!best || result.differing < best->differing) best = result;
        if (!last_try) return false;
        // The last try: what the screen showed, and where it differed.
        std::string stem = reference.stem().string();
        std::filesystem::path actual_png = out_dir() / (stem + ".actual.png");
        std::filesystem::path diff_png = out_dir() / (stem + ".diff.png");
        actual.write_png(actual_png, state_dir());
        difference_image(actual, expected, tolerance.channel).write_png(diff_png, state_dir());
        rootlog().record_screenshot(name(), actual_png);
        rootlog().record_screenshot(name(), diff_png);
        saved = fmt::format("at last {}; the last screen is saved as {} and its differing pixels (red) as {}",
                            result.describe(), actual_png.string(), diff_png.string());
        timed_out = true;
        return true;
      },
      timeout);
  if (!timed_out) return;
  throw_timed_out(start, timeout,
                  fmt::format("{} does not match {}: at best {} (threshold {}, channel tolerance {}), {}",
                              screen_name(region), reference.string(), best->describe(), tolerance.threshold,
                              tolerance.channel, saved));
}

std::filesystem::path Machine::save_screen_region(const std::string& filename,
                                                  const std::optional<ImageRegion>& region) {
  std::filesystem::path target = screenshot_path(filename);
  auto nest = nested(fmt::format("saving {} as {}", screen_name(region), target.string()),
                     {{"image", target.filename().string()}});
  screen_image(region).write_png(target, state_dir());
  rootlog().record_screenshot(name(), target);
  return target;
}

namespace {
// Each OCR tool run is bounded by this too (a wedged tesseract).
const Duration kOcrTimeout(120.0);
// While the processed variants run, wait_for_text reads a fresh screenshot
// as it is this often: text that appears meanwhile is seen within about
// this plus one tesseract run.
const Duration kFreshScreenshotEvery(1.0);
}  // namespace

std::vector<std::string> Machine::get_screen_text_variants() {
  OcrRun run([this](const std::filesystem::path& ppm) { screendump(ppm); },
             {.processed_variants = true, .work_dir = state_dir()});
  auto deadline = Deadline::after(kOcrTimeout);
  std::vector<std::string> texts;
  while (auto text = run.next_text(deadline)) texts.push_back(std::move(*text));
  if (deadline.passed()) throw Error(fmt::format("OCR did not finish within {} seconds", kOcrTimeout.to_string()));
  return texts;
}

std::string Machine::get_screen_text() {
  OcrRun run([this](const std::filesystem::path& ppm) { screendump(ppm); },
             {.processed_variants = false, .work_dir = state_dir()});
  auto text = run.next_text(Deadline::after(kOcrTimeout));
  if (!text) throw Error(fmt::format("OCR did not finish within {} seconds", kOcrTimeout.to_string()));
  return *text;
}

void Machine::wait_for_text(const TextPattern& pattern, Duration timeout) {
  auto nest = nested(fmt::format("waiting for {} to appear on screen", pattern.text));
  auto deadline = Deadline::after(timeout);
  retry_until(
      [&](bool last_try) {
        // The first text that matches ends the try: the run's destructor
        // kills the jobs still reading.
        OcrRun run([this](const std::filesystem::path& ppm) { screendump(ppm); },
                   {.processed_variants = true, .fresh_every = kFreshScreenshotEvery, .work_dir = state_dir()});
        std::vector<std::string> seen;
        while (auto text = run.next_text(deadline)) {
          if (pattern.matches(*text)) return true;
          seen.push_back(std::move(*text));
        }
        if (last_try || deadline.passed()) {
          std::string all;
          for (const auto& v : seen) all += (all.empty() ? "" : "', '") + v;
          log(fmt::format("Last OCR attempt failed. Text was: ['{}']", all));
        }
        return false;
      },
      deadline, timeout);
}

}  // namespace td
