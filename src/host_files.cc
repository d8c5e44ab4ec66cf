#include "test_driver/host_files.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "test_driver/errors.h"

namespace td {
namespace {

// Closes the descriptor on scope exit.
struct FileDescriptor {
  int fd;
  explicit FileDescriptor(int value) : fd(value) {}
  ~FileDescriptor() {
    if (fd >= 0) ::close(fd);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
};

// Whether `fd` is a regular file: only those are removed when a write
// fails (never /dev/full or a FIFO given as the target).
bool is_regular(int fd) {
  struct stat st {};
  return ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
}

// Writes all of `data` to `fd`; returns 0 or the errno of the failed write.
int write_all(int fd, const char* data, size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return 0;
}

[[noreturn]] void copy_failed(const std::filesystem::path& from, const std::filesystem::path& to, int error) {
  throw Error(fmt::format("cannot copy {} to {}: {}", from.string(), to.string(), std::strerror(error)));
}

void copy_file(const std::filesystem::path& from, const std::filesystem::path& to, mode_t mode) {
  FileDescriptor in(::open(from.c_str(), O_RDONLY | O_CLOEXEC));
  if (in.fd < 0) copy_failed(from, to, errno);
  FileDescriptor out(::open(to.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode & 07777));
  if (out.fd < 0) copy_failed(from, to, errno);
  // A file cut short is not left to look like a copy.
  bool regular = is_regular(out.fd);
  auto failed = [&](int error) {
    ::close(out.fd);
    out.fd = -1;
    if (regular) ::unlink(to.c_str());
    copy_failed(from, to, error);
  };
  char buffer[1 << 16];
  for (;;) {
    ssize_t n = ::read(in.fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) failed(errno);
    if (n == 0) break;
    if (int error = write_all(out.fd, buffer, static_cast<size_t>(n))) failed(error);
  }
  // A full disk may show only when the data is written back (NFS, 9p).
  int closed = ::close(out.fd);
  out.fd = -1;
  if (closed != 0) failed(errno);
}

}  // namespace

void write_host_file(const std::filesystem::path& path, std::string_view content) {
  FileDescriptor out(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  bool regular = out.fd >= 0 && is_regular(out.fd);
  auto failed = [&](int error) {
    if (out.fd >= 0) ::close(out.fd);
    out.fd = -1;
    // A file cut short is not left to look like a whole one.
    if (regular) ::unlink(path.c_str());
    throw Error(fmt::format("cannot write {}: {}", path.string(), std::strerror(error)));
  };
  if (out.fd < 0) failed(errno);
  if (int error = write_all(out.fd, content.data(), content.size())) failed(error);
  int closed = ::close(out.fd);
  out.fd = -1;
  if (closed != 0) failed(errno);
}

void copy_host_tree(const std::filesystem::path& from, const std::filesystem::path& to) {
  struct stat st {};
  if (::lstat(from.c_str(), &st) != 0) copy_failed(from, to, errno);
  if (S_ISLNK(st.st_mode)) {
    std::error_code ec;
    auto link = std::filesystem::read_symlink(from, ec);
    if (ec) copy_failed(from, to, ec.value());
    std::filesystem::remove(to, ec);
    if (::symlink(link.c_str(), to.c_str()) != 0) copy_failed(from, to, errno);
    return;
  }
  if (S_ISDIR(st.st_mode)) {
    if (::mkdir(to.c_str(), st.st_mode & 07777) != 0 && errno != EEXIST) copy_failed(from, to, errno);
    std::error_code ec;
    for (auto it = std::filesystem::directory_iterator(from, ec); !ec && it != std::filesystem::directory_iterator();
         it.increment(ec))
      copy_host_tree(it->path(), to / it->path().filename());
    if (ec) copy_failed(from, to, ec.value());
    return;
  }
  copy_file(from, to, st.st_mode);
}

}  // namespace td
