// A video of one QEMU machine's screen (--video): a thread takes a
// screendump every half second through a QMP monitor of its own (QEMU serves
// a second one for it), so it never waits for the test's commands nor makes
// them wait, and pipes the PPM frames into ffmpeg, which encodes them as VP9
// into OUTPUT/<machine>.webm. Frames of every size are scaled down (never
// up) and padded to one fixed size. When a screendump is late, the last frame
// fills the ticks it missed, so the video runs at the wall clock's pace while
// QEMU runs. finish() gives ffmpeg the end of its input and waits for it
// (bounded), so the file is complete however the run ends (a failure, Ctrl-C,
// SIGTERM, the global timeout).
//
// One recorder lives as long as its Machine: attach() when a QEMU runs its
// guest (each boot; a restored snapshot or boot-cache entry once it is
// loaded, since a QEMU waiting for its state has no screen of its own),
// detach() when it stops; all of those go into one video, until finish().
// A recorder attached again after finish() starts the next file,
// OUTPUT/<machine>-2.webm.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "test_driver/duration.h"

namespace td {

class Process;

class ScreenRecorder {
 public:
  struct Options {
    std::string machine;                 // its name: the file's and the log lines'
    std::filesystem::path out_dir;       // the video goes here
    std::filesystem::path state_dir;     // the frame file and ffmpeg's log go here
    Duration interval{0.5};              // between frames (2 per second)
    int width = 1024;                    // every frame is fitted into this size
    int height = 768;
  };

  explicit ScreenRecorder(Options options);
  // finish(); never throws.
  ~ScreenRecorder();
  ScreenRecorder(const ScreenRecorder&) = delete;
  ScreenRecorder& operator=(const ScreenRecorder&) = delete;

  // The socket of the recorder's own QMP monitor, in the state directory.
  std::filesystem::path socket_path() const { return options_.state_dir / "video-qmp"; }
  // What QEMU's command line gets for that monitor (appended by the Machine).
  static std::vector<std::string> qemu_args(const std::filesystem::path& socket);

  // Starts taking frames from the QEMU that serves socket_path() (it has
  // started). ffmpeg starts with the first frame. Never throws: what fails
  // is logged and the run goes on without a video.
  void attach();
  // Stops taking frames (the QEMU is stopping or gone); the video stays open.
  void detach();
  // Ends the video: detach(), end of input to ffmpeg, and a bounded wait for
  // it (then it is killed and the log says the file may be cut short).
  void finish();

  // The file the current (or next) video goes to.
  std::filesystem::path video_path() const;
  // Frames written to ffmpeg in this video (the filled-in ticks included).
  uint64_t frames() const { return frames_; }

  // --- pure parts (unit tested)
  // ffmpeg's command line: PPM frames on stdin at 1/interval per second,
  // scaled to fit width x height and padded to it, VP9 into `output`.
  static std::vector<std::string> ffmpeg_argv(const Options& options, const std::filesystem::path& output);
  // Width and height from a binary PPM's header (P6), or nullopt when
  // `data` is not exactly one complete frame.
  static std::optional<std::pair<int, int>> ppm_size(std::string_view data);
  // How many times a frame taken at `now` is written, when the video began
  // at `start` and `written` frames are in it: every tick up to `now` that
  // has no frame yet (at least 1, so each new screen is in the video).
  static uint64_t copies_due(std::chrono::steady_clock::time_point start, std::chrono::steady_clock::time_point now,
                             Duration interval, uint64_t written);
  // The file name of the n-th video (1: <machine>.webm, else <machine>-n.webm).
  static std::string file_name(const std::string& machine, int n);

 private:
  void run();  // the thread
  // Writes one frame `copies` times; false once ffmpeg cannot take it.
  bool write_frame(const std::string& ppm, uint64_t copies);
  bool start_ffmpeg();
  void log(const std::string& message) const;

  Options options_;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<bool> stop_{false};      // the thread is to end (set under mutex_, for wake_)
  std::unique_ptr<Process> ffmpeg_;    // from the first frame until finish()
  int video_number_ = 1;
  std::atomic<uint64_t> frames_{0};
  std::chrono::steady_clock::time_point video_start_{};
  bool broken_ = false;                // ffmpeg failed: no more frames this video
  pid_t creator_;                      // a fork of the driver leaves the recorder alone
};

}  // namespace td
