// Helpers for the channel tests (event loop, shell, monitor, QMP, serial):
// file descriptors, peers on sockets, reads that never wait unbounded.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <optional>
#include <mutex>
#include <ostream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include "test_driver/event_loop.h"
#include "test_driver/interrupt.h"

namespace td {
// Readable outcomes in assertion messages.
inline void PrintTo(EventLoop::Outcome outcome, std::ostream* os) {
  switch (outcome) {
    case EventLoop::Outcome::kDone: *os << "kDone"; return;
    case EventLoop::Outcome::kTimedOut: *os << "kTimedOut"; return;
    case EventLoop::Outcome::kExited: *os << "kExited"; return;
    case EventLoop::Outcome::kInterrupted: *os << "kInterrupted"; return;
    case EventLoop::Outcome::kStopped: *os << "kStopped"; return;
  }
  *os << "Outcome(" << static_cast<int>(outcome) << ")";
}
}  // namespace td

namespace td_test {

using namespace std::chrono_literals;

// An owned file descriptor.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    reset(other.release());
    return *this;
  }
  ~UniqueFd() { reset(); }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// A connected pair of Unix stream sockets, close-on-exec.
inline std::pair<UniqueFd, UniqueFd> socket_pair() {
  int fds[2] = {-1, -1};
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
    ADD_FAILURE() << "socketpair: " << std::strerror(errno);
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

// A pipe, close-on-exec: {read end, write end}.
inline std::pair<UniqueFd, UniqueFd> make_pipe() {
  int fds[2] = {-1, -1};
  if (::pipe2(fds, O_CLOEXEC) != 0) ADD_FAILURE() << "pipe2: " << std::strerror(errno);
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

// Writes all of `data` (blocking); false, and a test failure unless
// `may_fail`, when it cannot. A socket whose peer is gone is an error, not
// SIGPIPE.
inline bool write_all(int fd, std::string_view data, bool may_fail = false) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == ENOTSOCK) n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (!may_fail) ADD_FAILURE() << "write: " << std::strerror(errno);
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Waits at most `timeout` for `fd` to be readable.
inline bool readable_within(int fd, std::chrono::milliseconds timeout) {
  pollfd p{fd, POLLIN, 0};
  int r;
  do r = ::poll(&p, 1, static_cast<int>(timeout.count()));
  while (r < 0 && errno == EINTR);
  return r == 1;
}

// What arrives on `fd` within `timeout`, up to `max` bytes, until its end.
inline std::string read_for(int fd, size_t max, std::chrono::milliseconds timeout) {
  auto until = std::chrono::steady_clock::now() + timeout;
  std::string out;
  while (out.size() < max) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    if (left.count() < 0 || !readable_within(fd, left)) break;
    char buffer[65536];
    ssize_t n = ::read(fd, buffer, std::min(sizeof buffer, max - out.size()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buffer, static_cast<size_t>(n));
  }
  return out;
}

// One line from `fd`, without its newline; nullopt at the end of the input
// or after `timeout`. Reads a byte at a time, so nothing after it is taken.
inline std::optional<std::string> read_line(int fd, std::chrono::milliseconds timeout = 5s) {
  auto until = std::chrono::steady_clock::now() + timeout;
  std::string line;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    if (left.count() < 0 || !readable_within(fd, left)) return std::nullopt;
    char c;
    ssize_t n = ::read(fd, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;
    if (c == '\n') return line;
    line += c;
  }
}

// A private temporary directory, removed with its contents.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "td_unit_XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) ADD_FAILURE() << "mkdtemp: " << std::strerror(errno);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Seconds since construction.
class Stopwatch {
 public:
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

// The interrupt flag is process-wide: a test that may raise it starts and
// ends with it clear.
class InterruptReset {
 public:
  InterruptReset() { td::interrupt::clear(); }
  ~InterruptReset() { td::interrupt::clear(); }
  InterruptReset(const InterruptReset&) = delete;
  InterruptReset& operator=(const InterruptReset&) = delete;
};

// Writes `data` to `fd` from a thread of its own, when released or after
// `limit`, whichever comes first: the peer's late rest of a reply, which
// bounds a test whose wait would not end by itself. The destructor
// releases it and joins.
class LateWriter {
 public:
  LateWriter(int fd, std::string data, std::chrono::milliseconds limit = 2s)
      : thread_([this, fd, limit, data = std::move(data)] {
          std::unique_lock lock(mutex_);
          released_cv_.wait_for(lock, limit, [&] { return released_; });
          write_all(fd, data, /*may_fail=*/true);  // the test may be over
        }) {}
  ~LateWriter() {
    {
      std::lock_guard lock(mutex_);
      released_ = true;
    }
    released_cv_.notify_all();
    thread_.join();
  }
  LateWriter(const LateWriter&) = delete;
  LateWriter& operator=(const LateWriter&) = delete;

 private:
  std::mutex mutex_;
  std::condition_variable released_cv_;
  bool released_ = false;
  std::thread thread_;
};

}  // namespace td_test
