#include "test_driver/snapshot.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "test_driver/errors.h"
#include "test_driver/json.h"
#include "test_driver/process.h"
#include "test_driver/qmp_client.h"

namespace td {
namespace {

constexpr const char* kFdName = "td-snapshot";

// /proc/mounts escapes space, tab, newline and backslash as \ooo.
std::string unescape_octal(std::string_view field) {
  std::string out;
  auto octal = [&](size_t k) { return k < field.size() && field[k] >= '0' && field[k] <= '7'; };
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && octal(i + 1) && octal(i + 2) && octal(i + 3)) {
      out.push_back(static_cast<char>((field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 + (field[i + 3] - '0')));
      i += 3;
    } else {
      out.push_back(field[i]);
    }
  }
  return out;
}

std::vector<std::string_view> split(std::string_view text, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    size_t end = text.find(sep, start);
    out.push_back(text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) return out;
    start = end + 1;
  }
}

// key=value options of a QEMU option argument ("local,path=/x,mount_tag=y").
std::map<std::string, std::string> option_map(std::string_view arg) {
  std::map<std::string, std::string> out;
  for (auto part : split(arg, ',')) {
    size_t eq = part.find('=');
    if (eq == std::string_view::npos) continue;
    out.emplace(std::string(part.substr(0, eq)), std::string(part.substr(eq + 1)));
  }
  return out;
}

// A descriptor closed when it goes out of scope.
struct Fd {
  int fd = -1;
  explicit Fd(int f = -1) : fd(f) {}
  ~Fd() { reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  void reset() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};

void make_pipe(Fd& read_end, Fd& write_end, const std::string& step) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw Error(fmt::format("{}: pipe: {}", step, std::strerror(errno)));
  read_end.fd = fds[0];
  write_end.fd = fds[1];
  ::fcntl(fds[1], F_SETPIPE_SZ, 1 << 20);  // fewer wake-ups; best effort
}

bool finished(const std::string& status) {
  return status == "completed" || status == "failed" || status == "cancelled";
}

void enable_migration_events(QmpClient& qmp) {
  Json::Array caps{Json(Json::Object{{"capability", "events"}, {"state", true}})};
  qmp.command("migrate-set-capabilities", Json::Object{{"capabilities", Json(std::move(caps))}});
}

// Waits for the migration to end; throws naming `step` and QEMU's reason.
void wait_for_migration(QmpClient& qmp, Deadline deadline, const std::string& step) {
  if (!qmp.wait_until([&] { return finished(qmp.migration_status()); }, deadline, step))
    throw Error(fmt::format("{}: the migration did not finish in time (status {})", step,
                            qmp.migration_status().empty() ? "unknown" : qmp.migration_status()));
  if (qmp.migration_status() != "completed") {
    std::string why = qmp.migration_status();
    try {
      Json info = qmp.command("query-migrate");
      if (const Json* desc = info.find("error-desc")) why += ": " + desc->as_string();
    } catch (const Error&) {
    }
    throw Error(fmt::format("{}: the migration {}", step, why));
  }
}

// Waits for a helper (zstd) to exit; its status and error output, or throws.
void finish_helper(Process& helper, Deadline deadline, const std::string& step) {
  auto until = deadline.is_never() ? std::optional<Clock::time_point>() : deadline.time_point();
  if (!helper.wait(until)) {
    helper.terminate(std::chrono::seconds(1));
    throw Error(fmt::format("{}: zstd did not finish in time", step));
  }
  if (WIFEXITED(helper.status()) && WEXITSTATUS(helper.status()) == 0) return;
  std::string error;
  char buffer[4096];
  ssize_t n;
  while (helper.error_fd() >= 0 && (n = ::read(helper.error_fd(), buffer, sizeof buffer)) > 0 && error.size() < 4096)
    error.append(buffer, static_cast<size_t>(n));
  while (!error.empty() && (error.back() == '\n' || error.back() == '\r')) error.pop_back();
  throw Error(fmt::format("{}: zstd failed ({}){}", step, helper.describe_status(), error.empty() ? "" : ": " + error));
}

}  // namespace

std::vector<NinePMount> parse_9p_mounts(std::string_view proc_mounts) {
  std::vector<NinePMount> out;
  for (auto line : split(proc_mounts, '\n')) {
    auto fields = split(line, ' ');
    if (fields.size() < 4 || fields[2] != "9p") continue;
    out.push_back({unescape_octal(fields[0]), unescape_octal(fields[1]), std::string(fields[3])});
  }
  return out;
}

std::map<std::string, std::string> virtfs_exports(const std::vector<std::string>& argv) {
  std::map<std::string, std::string> exports;
  std::map<std::string, std::string> fsdev_paths;  // id -> path
  std::vector<std::map<std::string, std::string>> devices;
  for (size_t i = 0; i + 1 < argv.size(); ++i) {
    const std::string& flag = argv[i];
    if (flag == "-virtfs" || flag == "--virtfs") {
      auto opts = option_map(argv[i + 1]);
      if (opts.count("mount_tag") && opts.count("path")) exports[opts["mount_tag"]] = opts["path"];
    } else if (flag == "-fsdev" || flag == "--fsdev") {
      auto opts = option_map(argv[i + 1]);
      if (opts.count("id") && opts.count("path")) fsdev_paths[opts["id"]] = opts["path"];
    } else if (flag == "-device" || flag == "--device") {
      auto opts = option_map(argv[i + 1]);
      if (opts.count("fsdev") && opts.count("mount_tag")) devices.push_back(std::move(opts));
    }
  }
  for (auto& device : devices) {
    auto it = fsdev_paths.find(device["fsdev"]);
    if (it != fsdev_paths.end()) exports[device["mount_tag"]] = it->second;
  }
  return exports;
}

std::optional<std::vector<std::string>> read_cmdline(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/cmdline", pid), std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  std::string all = text.str();
  if (all.empty()) return std::nullopt;
  if (all.back() == '\0') all.pop_back();
  std::vector<std::string> out;
  for (auto part : split(all, '\0')) out.emplace_back(part);
  return out;
}

bool zstd_available() { return !Process::find_program("zstd").empty(); }

SnapshotStats save_snapshot_file(QmpClient& qmp, const std::filesystem::path& file, SnapshotCompression compression,
                                 Deadline deadline) {
  const std::string step = fmt::format("saving the guest's state to {}", file.string());
  auto tic = Clock::now();
  enable_migration_events(qmp);
  // QEMU's default cap (128 MB/s in 7.2) makes a save of a 500 MB guest last seconds.
  qmp.command("migrate-set-parameters", Json::Object{{"max-bandwidth", Json(static_cast<double>(1e12))}});
  qmp.command("stop");

  std::filesystem::path temp = file;
  temp += fmt::format(".tmp-{}-{}", ::getpid(), Clock::now().time_since_epoch().count());
  Fd out(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (out.fd < 0) throw Error(fmt::format("{}: cannot create {}: {}", step, temp.string(), std::strerror(errno)));
  try {
    std::unique_ptr<Process> zstd;
    if (compression == SnapshotCompression::kZstd) {
      Fd read_end, write_end;
      make_pipe(read_end, write_end, step);
      Process::Options options;
      options.argv = {"zstd", "-1", "-q", "-c", "-T2"};
      options.stdin_fd = read_end.fd;
      options.capture_stdout = false;
      options.stdout_fd = out.fd;
      options.capture_stderr_apart = true;
      zstd = Process::spawn(options);
      qmp.send_fd(write_end.fd, kFdName);
    } else {
      qmp.send_fd(out.fd, kFdName);
    }
    qmp.forget_migration_status();
    qmp.command("migrate", Json::Object{{"uri", std::string("fd:") + kFdName}});
    wait_for_migration(qmp, deadline, step);
    // QEMU sends "completed" a moment before it leaves the finish-migrate
    // run state, and refuses `cont` until it has; that moment is not an
    // event, so it is asked for (bounded by the deadline).
    for (;;) {
      Json status = qmp.command("query-status");
      if (status.string_at("status") != "finish-migrate") break;
      if (deadline.passed()) throw Error(fmt::format("{}: QEMU stayed in the finish-migrate state", step));
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (zstd) finish_helper(*zstd, deadline, step);
    out.reset();
    std::filesystem::rename(temp, file);
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove(temp, ec);
    throw;
  }
  SnapshotStats stats;
  std::error_code ec;
  stats.bytes = std::filesystem::file_size(file, ec);
  stats.seconds = std::chrono::duration<double>(Clock::now() - tic).count();
  return stats;
}

void load_snapshot_file(QmpClient& qmp, const std::filesystem::path& file, SnapshotCompression compression,
                        Deadline deadline) {
  const std::string step = fmt::format("loading the guest's state from {}", file.string());
  Fd in(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (in.fd < 0) throw Error(fmt::format("{}: cannot open it: {}", step, std::strerror(errno)));
  enable_migration_events(qmp);
  std::unique_ptr<Process> zstd;
  if (compression == SnapshotCompression::kZstd) {
    Fd read_end, write_end;
    make_pipe(read_end, write_end, step);
    Process::Options options;
    options.argv = {"zstd", "-d", "-q", "-c"};
    options.stdin_fd = in.fd;
    options.capture_stdout = false;
    options.stdout_fd = write_end.fd;
    options.capture_stderr_apart = true;
    zstd = Process::spawn(options);
    qmp.send_fd(read_end.fd, kFdName);
  } else {
    qmp.send_fd(in.fd, kFdName);
  }
  in.reset();
  qmp.forget_migration_status();
  qmp.command("migrate-incoming", Json::Object{{"uri", std::string("fd:") + kFdName}});
  wait_for_migration(qmp, deadline, step);
  // zstd checks the frame's checksum at its end: a corrupt file fails here,
  // before the guest runs a single instruction of it.
  if (zstd) finish_helper(*zstd, deadline, step);
}

std::string set_clock_command() {
  auto now = std::chrono::system_clock::now().time_since_epoch();
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now).count();
  return fmt::format("date -u -s @{}.{:09d} >/dev/null", ns / 1000000000, ns % 1000000000);
}

}  // namespace td
