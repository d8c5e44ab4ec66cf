// ScreenRecorder: screendumps through a QMP monitor of the recorder's own,
// piped into ffmpeg (run as an argument vector).
#include "test_driver/screen_recorder.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>

#include "test_driver/errors.h"
#include "test_driver/json.h"
#include "test_driver/logger.h"
#include "test_driver/process.h"

namespace td {
namespace {

using Clock = std::chrono::steady_clock;

// How long QEMU may take to answer one screendump before the frame is skipped.
constexpr auto kReplyTimeout = std::chrono::seconds(5);
// How long connecting to the recorder's QMP socket may take (QEMU made it at start).
constexpr auto kConnectTimeout = std::chrono::seconds(10);
// How long ffmpeg may take to take one frame off the pipe.
constexpr auto kWriteTimeout = std::chrono::seconds(10);
// How long ffmpeg may take to encode what it has and close the file.
constexpr auto kFinishTimeout = std::chrono::seconds(30);
// How far below the test ffmpeg runs (nice): QEMU and the driver come first.
constexpr int kNiceness = 10;

int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(std::min<long long>(left, 1 << 30));
}

// A blocking QMP client for the recorder's thread alone: one command at a
// time, replies matched by "id", events skipped. Every wait is bounded, and
// one that a stop request cuts short says so.
class RecorderQmp {
 public:
  enum class Status { kReply, kTimedOut, kClosed, kStopped };

  explicit RecorderQmp(const std::atomic<bool>& stop) : stop_(stop) {}
  ~RecorderQmp() {
    if (fd_ >= 0) ::close(fd_);
  }

  // Connects (retrying while QEMU has not made the socket yet) and leaves
  // negotiation mode; "" or why not.
  std::string open(const std::filesystem::path& path) {
    auto deadline = Clock::now() + kConnectTimeout;
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (path.string().size() >= sizeof address.sun_path) return "the socket path is too long";
    std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
    for (;;) {
      fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd_ < 0) return std::strerror(errno);
      if (::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) break;
      int error = errno;
      ::close(fd_);
      fd_ = -1;
      if ((error != ENOENT && error != ECONNREFUSED) || Clock::now() >= deadline)
        return fmt::format("cannot connect to {}: {}", path.string(), std::strerror(error));
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      if (stop_) return "stopped";
    }
    ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
    Json reply;
    auto greeting = read_message(deadline, reply);  // {"QMP": ...}
    if (greeting != Status::kReply) return "no QMP greeting";
    Status status = command("qmp_capabilities", Json(), reply);
    if (status != Status::kReply) return "no answer to qmp_capabilities";
    if (reply.find("error")) return "qmp_capabilities failed: " + reply.find("error")->dump();
    return "";
  }

  // Sends `name` and waits for its reply (an object with "return" or "error").
  Status command(const std::string& name, const Json& arguments, Json& reply) {
    ++id_;
    Json::Object message{{"execute", name}, {"id", Json(static_cast<double>(id_))}};
    if (!arguments.is_null()) message.emplace_back("arguments", arguments);
    std::string line = Json(std::move(message)).dump() + "\n";
    auto deadline = Clock::now() + kReplyTimeout;
    size_t done = 0;
    while (done < line.size()) {
      ssize_t n = ::send(fd_, line.data() + done, line.size() - done, MSG_NOSIGNAL);
      if (n > 0) {
        done += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno != EAGAIN) return Status::kClosed;
      pollfd p{fd_, POLLOUT, 0};
      if (::poll(&p, 1, std::min(remaining_ms(deadline), 200)) == 0 && Clock::now() >= deadline) return Status::kTimedOut;
      if (stop_) return Status::kStopped;
    }
    for (;;) {
      Status status = read_message(deadline, reply);
      if (status != Status::kReply) return status;
      const Json* id = reply.find("id");
      if (id && id->is_number() && id->as_number() == static_cast<double>(id_)) return Status::kReply;
      // An event, or the late reply of a command that timed out: not this one's.
    }
  }

 private:
  Status read_message(Clock::time_point deadline, Json& message) {
    for (;;) {
      size_t newline = buffer_.find('\n');
      if (newline != std::string::npos) {
        std::string line = buffer_.substr(0, newline);
        buffer_.erase(0, newline + 1);
        try {
          message = Json::parse(line);
        } catch (const Error&) {
          continue;  // not QMP: skipped
        }
        return Status::kReply;
      }
      if (stop_) return Status::kStopped;
      int left = remaining_ms(deadline);
      if (left == 0) return Status::kTimedOut;
      pollfd p{fd_, POLLIN, 0};
      int r = ::poll(&p, 1, std::min(left, 200));  // short slices: a stop request is seen
      if (r < 0 && errno != EINTR) return Status::kClosed;
      if (r <= 0) continue;
      char chunk[4096];
      ssize_t n = ::read(fd_, chunk, sizeof chunk);
      if (n == 0) return Status::kClosed;
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        return Status::kClosed;
      }
      buffer_.append(chunk, static_cast<size_t>(n));
      if (buffer_.size() > (16u << 20)) return Status::kClosed;  // no line: not QMP
    }
  }

  const std::atomic<bool>& stop_;
  int fd_ = -1;
  uint64_t id_ = 0;
  std::string buffer_;
};

// The whole file in `into` (empty when it cannot be read): read(2) in large
// pieces, since a frame is most of a megabyte twice a second.
void read_file(const std::filesystem::path& path, std::string& into) {
  into.clear();
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  struct stat st {};
  if (::fstat(fd, &st) == 0 && st.st_size > 0) into.reserve(static_cast<size_t>(st.st_size));
  char chunk[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    into.append(chunk, static_cast<size_t>(n));
  }
  ::close(fd);
}

std::string read_file(const std::filesystem::path& path) {
  std::string text;
  read_file(path, text);
  return text;
}

// The last lines of ffmpeg's log, for an error message.
std::string log_tail(const std::filesystem::path& path) {
  std::string text = read_file(path);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  if (text.size() > 600) text = "..." + text.substr(text.size() - 600);
  return text.empty() ? "(it printed nothing)" : text;
}

}  // namespace

ScreenRecorder::ScreenRecorder(Options options) : options_(std::move(options)), creator_(::getpid()) {}

ScreenRecorder::~ScreenRecorder() {
  if (::getpid() != creator_) {
    // A fork of the driver: the thread and ffmpeg are the driver's.
    if (thread_.joinable()) thread_.detach();
    (void)ffmpeg_.release();
    return;
  }
  try {
    finish();
  } catch (...) {
  }
}

std::vector<std::string> ScreenRecorder::qemu_args(const std::filesystem::path& socket) {
  std::string path;  // QEMU's option syntax: a comma is doubled
  for (char c : socket.string()) path += c == ',' ? std::string(",,") : std::string(1, c);
  return {"-chardev", fmt::format("socket,id=td-video,path={},server=on,wait=off", path), "-mon",
          "chardev=td-video,mode=control"};
}

std::string ScreenRecorder::file_name(const std::string& machine, int n) {
  return n <= 1 ? machine + ".webm" : fmt::format("{}-{}.webm", machine, n);
}

std::filesystem::path ScreenRecorder::video_path() const {
  return options_.out_dir / file_name(options_.machine, video_number_);
}

std::vector<std::string> ScreenRecorder::ffmpeg_argv(const Options& options, const std::filesystem::path& output) {
  double rate = 1.0 / std::max(options.interval.seconds(), 0.01);
  int w = options.width, h = options.height;
  // Down to fit (never up: a text console stays sharp), centred on black.
  std::string filter = fmt::format(
      "scale=w='min({0},iw)':h='min({1},ih)':force_original_aspect_ratio=decrease,"
      "pad={0}:{1}:(ow-iw)/2:(oh-ih)/2,format=yuv420p",
      w, h);
  return {"ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error",
          // PPM frames, each with its own header (and size), at the recorder's rate
          "-f", "image2pipe", "-framerate", fmt::format("{:g}", rate), "-c:v", "ppm", "-i", "pipe:0",
          "-vf", filter,
          // VP9 at its cheapest: real time, one thread, no look-ahead (each
          // frame is encoded as it comes), constant quality, a key frame
          // every 10 seconds
          "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-threads", "1", "-lag-in-frames", "0", "-b:v", "0",
          "-crf", "40",
          "-g", fmt::format("{}", std::max(1, static_cast<int>(std::lround(rate * 10)))), "-f", "webm", "-y",
          output.string()};
}

std::optional<std::pair<int, int>> ScreenRecorder::ppm_size(std::string_view data) {
  if (data.size() < 2 || data[0] != 'P' || data[1] != '6') return std::nullopt;
  size_t at = 2;
  long values[3];
  for (long& value : values) {
    // Whitespace and comments, then a decimal number.
    for (;;) {
      if (at >= data.size()) return std::nullopt;
      char c = data[at];
      if (c == '#') {
        while (at < data.size() && data[at] != '\n') ++at;
      } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
        ++at;
      } else {
        break;
      }
    }
    if (data[at] < '0' || data[at] > '9') return std::nullopt;
    value = 0;
    while (at < data.size() && data[at] >= '0' && data[at] <= '9') {
      value = value * 10 + (data[at] - '0');
      if (value > 1'000'000) return std::nullopt;
      ++at;
    }
  }
  if (at >= data.size() || values[0] == 0 || values[1] == 0 || values[2] == 0 || values[2] > 65535)
    return std::nullopt;
  size_t pixels = static_cast<size_t>(values[0]) * static_cast<size_t>(values[1]) * (values[2] > 255 ? 6 : 3);
  // One whitespace byte, then the pixels, and nothing after them: ffmpeg's
  // PPM stream parser would take any extra byte for the next frame's start.
  if (data.size() != at + 1 + pixels) return std::nullopt;
  return std::make_pair(static_cast<int>(values[0]), static_cast<int>(values[1]));
}

uint64_t ScreenRecorder::copies_due(Clock::time_point start, Clock::time_point now, Duration interval,
                                    uint64_t written) {
  double elapsed = std::chrono::duration<double>(now - start).count();
  double step = std::max(interval.seconds(), 0.001);
  uint64_t ticks = elapsed < 0 ? 1 : static_cast<uint64_t>(std::floor(elapsed / step)) + 1;
  return ticks > written ? ticks - written : 1;
}

void ScreenRecorder::log(const std::string& message) const {
  rootlog().log(fmt::format("video: {}", message), {{"machine", options_.machine}});
}

void ScreenRecorder::attach() {
  if (::getpid() != creator_ || thread_.joinable()) return;
  stop_ = false;
  // No signal reaches the thread: they are Python's main thread's (and a
  // write to a closed pipe is EPIPE, not SIGPIPE).
  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  try {
    thread_ = std::thread([this] { run(); });
  } catch (const std::exception& e) {
    log(fmt::format("cannot start the recording thread: {}", e.what()));
  }
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

void ScreenRecorder::detach() {
  if (::getpid() != creator_ || !thread_.joinable()) return;
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();  // bounded: each of its waits is, and each sees stop_
}

void ScreenRecorder::finish() {
  if (::getpid() != creator_) return;
  detach();
  if (!ffmpeg_) return;
  auto ffmpeg = std::move(ffmpeg_);
  std::filesystem::path path = video_path();
  std::filesystem::path log_path = options_.state_dir / "video-ffmpeg.log";
  uint64_t frames = frames_;
  ++video_number_;
  frames_ = 0;
  broken_ = false;
  ffmpeg->close_input();  // the end of its input: it encodes the rest and closes the file
  if (!ffmpeg->wait(Clock::now() + kFinishTimeout)) {
    ffmpeg->terminate(std::chrono::seconds(2));
    log(fmt::format("ffmpeg did not finish {} within {} seconds and was killed; the video may be cut short",
                    path.string(), std::chrono::duration_cast<std::chrono::seconds>(kFinishTimeout).count()));
    return;
  }
  if (!(WIFEXITED(ffmpeg->status()) && WEXITSTATUS(ffmpeg->status()) == 0)) {
    log(fmt::format("ffmpeg failed ({}) writing {}: {}", ffmpeg->describe_status(), path.string(), log_tail(log_path)));
    return;
  }
  log(fmt::format("{} frames ({:.1f} seconds) written to {}", frames, static_cast<double>(frames) * options_.interval.seconds(),
                  path.string()));
}

bool ScreenRecorder::start_ffmpeg() {
  std::filesystem::path log_path = options_.state_dir / "video-ffmpeg.log";
  int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (log_fd < 0) {
    log(fmt::format("no video: cannot create {}: {}", log_path.string(), std::strerror(errno)));
    return false;
  }
  Process::Options spawn;
  spawn.argv = ffmpeg_argv(options_, video_path());
  spawn.stdin_pipe = true;
  spawn.capture_stdout = false;
  spawn.stdout_fd = log_fd;
  spawn.stderr_fd = log_fd;
  try {
    ffmpeg_ = Process::spawn(spawn);
  } catch (const Error& e) {
    ::close(log_fd);
    log(fmt::format("no video: {} (install ffmpeg)", e.what()));
    return false;
  }
  ::close(log_fd);
  ::setpriority(PRIO_PROCESS, static_cast<id_t>(ffmpeg_->pid()), kNiceness);
  int fd = ffmpeg_->input_fd();
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  ::fcntl(fd, F_SETPIPE_SZ, 1 << 20);  // a whole frame, where the system allows it
  log(fmt::format("recording the screen to {} (ffmpeg pid {})", video_path().string(), ffmpeg_->pid()));
  return true;
}

bool ScreenRecorder::write_frame(const std::string& ppm, uint64_t copies) {
  int fd = ffmpeg_->input_fd();
  for (uint64_t copy = 0; copy < copies; ++copy) {
    if (copy > 0 && stop_) break;  // the frame is in; the fill-ins may go
    auto deadline = Clock::now() + kWriteTimeout;
    size_t done = 0;
    while (done < ppm.size()) {
      ssize_t n = ::write(fd, ppm.data() + done, ppm.size() - done);
      if (n > 0) {
        done += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno != EAGAIN) {
        log(fmt::format("ffmpeg stopped taking frames ({}); the rest of the run has no video", std::strerror(errno)));
        return false;
      }
      if (Clock::now() >= deadline) {
        log(fmt::format("ffmpeg took no frame for {} seconds; the rest of the run has no video",
                        std::chrono::duration_cast<std::chrono::seconds>(kWriteTimeout).count()));
        return false;
      }
      pollfd p{fd, POLLOUT, 0};
      ::poll(&p, 1, std::min(remaining_ms(deadline), 200));
    }
    ++frames_;
  }
  return true;
}

void ScreenRecorder::run() {
  // Connecting may fail on a loaded host (QEMU slow to greet): tried again
  // every second until detach().
  std::unique_ptr<RecorderQmp> connection;
  for (bool told = false; !connection;) {
    auto qmp = std::make_unique<RecorderQmp>(stop_);
    std::string why = qmp->open(socket_path());
    if (why.empty()) {
      connection = std::move(qmp);
      break;
    }
    if (stop_) return;
    if (!told) log(fmt::format("the recording monitor: {}; trying again", why));
    told = true;
    std::unique_lock lock(mutex_);
    if (wake_.wait_for(lock, std::chrono::seconds(1), [&] { return stop_.load(); })) return;
  }
  RecorderQmp& qmp = *connection;
  std::filesystem::path frame = options_.state_dir / "video-frame.ppm";
  Json arguments(Json::Object{{"filename", frame.string()}});
  bool first = true;
  Clock::time_point base{};
  Clock::time_point next = Clock::now();
  bool told_error = false;
  std::string ppm;  // the frame, its buffer kept from one to the next
  while (!broken_) {
    {
      std::unique_lock lock(mutex_);
      if (wake_.wait_until(lock, next, [&] { return stop_.load(); })) break;
    }
    std::error_code ec;
    std::filesystem::remove(frame, ec);
    Json reply;
    auto status = qmp.command("screendump", arguments, reply);
    if (status == RecorderQmp::Status::kClosed || status == RecorderQmp::Status::kStopped) break;  // QEMU is gone
    auto now = Clock::now();
    if (status == RecorderQmp::Status::kTimedOut) {
      next = now + options_.interval.clock_duration();  // skipped; the next frame fills the gap
      continue;
    }
    if (const Json* error = reply.find("error")) {
      if (!told_error) log(fmt::format("screendump failed: {}; trying again", error->string_at("desc")));
      told_error = true;
      next = now + std::chrono::seconds(2);
      continue;
    }
    read_file(frame, ppm);
    std::filesystem::remove(frame, ec);
    if (!ppm_size(ppm)) {
      next = now + options_.interval.clock_duration();
      continue;
    }
    if (!ffmpeg_ && !start_ffmpeg()) {
      broken_ = true;
      break;
    }
    if (first) {
      // This QEMU's frames follow the last one's, without the time between them.
      base = now - std::chrono::duration_cast<Clock::duration>(options_.interval.clock_duration() *
                                                               static_cast<int64_t>(frames_.load()));
      first = false;
    }
    if (!write_frame(ppm, copies_due(base, now, options_.interval, frames_))) {
      broken_ = true;
      break;
    }
    next = base + std::chrono::duration_cast<Clock::duration>(options_.interval.clock_duration() *
                                                              static_cast<int64_t>(frames_.load()));
  }
}

}  // namespace td
