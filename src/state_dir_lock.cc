#include "test_driver/state_dir_lock.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>

#include "test_driver/errors.h"

namespace td {

namespace {

int take_lock(const std::filesystem::path& dir, const std::string& what) {
  std::filesystem::path path = dir / kStateDirLockFile;
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) throw Error(fmt::format("cannot create the lock file {}: {}", path.string(), std::strerror(errno)));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int error = errno;
    char buffer[32] = {};
    ssize_t n = ::pread(fd, buffer, sizeof buffer - 1, 0);
    ::close(fd);
    std::string holder = n > 0 ? std::string(buffer, static_cast<size_t>(n)) : "";
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    if (error == EWOULDBLOCK)
      throw Error(fmt::format("the {} {} is in use by another test driver (pid {}); run each driver with a TMPDIR "
                              "of its own",
                              what, dir.string(), holder.empty() ? "unknown" : holder));
    throw Error(fmt::format("cannot lock {}: {}", path.string(), std::strerror(error)));
  }
  std::string pid = fmt::format("{}\n", ::getpid());
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    int error = errno;
    ::close(fd);
    throw Error(fmt::format("cannot write the lock file {}: {}", path.string(), std::strerror(error)));
  }
  return fd;
}

}  // namespace

std::shared_ptr<void> lock_state_dir(const std::filesystem::path& dir, const std::string& what) {
  static std::mutex mutex;
  static std::map<std::string, std::weak_ptr<void>> held;
  std::lock_guard lock(mutex);
  std::error_code ec;
  std::string key = std::filesystem::canonical(dir, ec).string();
  if (ec) key = dir.string();
  if (auto existing = held[key].lock()) return existing;
  int fd = take_lock(dir, what);
  std::shared_ptr<int> handle(new int(fd), [](int* held_fd) {
    ::close(*held_fd);
    delete held_fd;
  });
  held[key] = handle;
  return handle;
}

void make_private_dir(const std::filesystem::path& path, const std::string& what) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec || !std::filesystem::is_directory(path))
    throw Error(fmt::format("cannot create the {} {}: {}", what, path.string(), ec ? ec.message() : "not a directory"));
  ::chmod(path.c_str(), 0700);
}

void wipe_state_dir(const std::filesystem::path& dir, const std::string& what) {
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(dir, ec); !ec && it != std::filesystem::directory_iterator();
       it.increment(ec)) {
    if (it->path().filename() == kStateDirLockFile) continue;
    std::filesystem::remove_all(it->path(), ec);
    if (ec) break;
  }
  if (ec) throw Error(fmt::format("cannot delete the {} {}: {}", what, dir.string(), ec.message()));
}

}  // namespace td
