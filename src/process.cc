#include "test_driver/process.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <string_view>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "test_driver/errors.h"

extern char** environ;

namespace td {
namespace {

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

std::vector<char*> c_strings(const std::vector<std::string>& v) {
  std::vector<char*> out;
  for (const auto& s : v) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

// Runs jobs on one thread that lives as long as the process. Children are
// forked there: PR_SET_PDEATHSIG fires when the *thread* that forked the
// child ends, and the threads that start machines (start_all's, a script's)
// end long before the run does.
class Spawner {
 public:
  static Spawner& instance() {
    // Never destroyed: exit ends its thread. A forked copy of the driver (a
    // script's os.fork()) has no such thread, so it makes its own.
    static std::mutex mutex;
    static Spawner* spawner = nullptr;
    static pid_t owner = -1;
    std::lock_guard lock(mutex);
    if (!spawner || owner != ::getpid()) {
      spawner = new Spawner();
      owner = ::getpid();
    }
    return *spawner;
  }

  void run(const std::function<void()>& job) {
    std::unique_lock lock(mutex_);
    bool done = false;
    jobs_.push_back([&] {
      job();
      std::lock_guard inner(mutex_);
      done = true;
      finished_.notify_all();
    });
    queued_.notify_one();
    finished_.wait(lock, [&] { return done; });
  }

 private:
  Spawner() {
    // No signal is delivered to this thread: they belong to Python's main thread.
    sigset_t all, old;
    sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &old);
    std::thread([this] { loop(); }).detach();
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }

  void loop() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock lock(mutex_);
        queued_.wait(lock, [&] { return !jobs_.empty(); });
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();
    }
  }

  std::mutex mutex_;
  std::condition_variable queued_;
  std::condition_variable finished_;
  std::deque<std::function<void()>> jobs_;
};

}  // namespace

std::unique_ptr<Process> Process::spawn(const Options& options) {
  if (options.argv.empty()) throw Error("cannot start a process: empty command");
  int out_pipe[2] = {-1, -1};
  int err_pipe[2] = {-1, -1};
  int exec_error[2] = {-1, -1};
  int in_pipe[2] = {-1, -1};
  if (options.stdin_pipe && ::pipe2(in_pipe, O_CLOEXEC) != 0) throw Error(fmt::format("pipe: {}", std::strerror(errno)));
  if (options.capture_stdout && ::pipe2(out_pipe, O_CLOEXEC) != 0) throw Error(fmt::format("pipe: {}", std::strerror(errno)));
  if (options.capture_stderr_apart && ::pipe2(err_pipe, O_CLOEXEC) != 0) throw Error(fmt::format("pipe: {}", std::strerror(errno)));
  if (::pipe2(exec_error, O_CLOEXEC) != 0) throw Error(fmt::format("pipe: {}", std::strerror(errno)));

  // Everything the child needs is prepared before fork: after it, only
  // async-signal-safe calls.
  std::vector<char*> argv = c_strings(options.argv);
  std::vector<char*> envp = c_strings(options.env);
  char** env = options.env.empty() ? environ : envp.data();
  const char* cwd = options.cwd.empty() ? nullptr : options.cwd.c_str();

  // The namespaces to enter, opened in the child (before it enters any).
  constexpr const char* kNamespaces[] = {"ipc", "uts", "net", "pid", "cgroup", "mnt"};
  std::vector<std::string> ns_paths;
  std::string root_path, cwd_path;
  if (options.enter_namespaces_of > 0) {
    for (const char* ns : kNamespaces) ns_paths.push_back(fmt::format("/proc/{}/ns/{}", options.enter_namespaces_of, ns));
    root_path = fmt::format("/proc/{}/root", options.enter_namespaces_of);
    cwd_path = fmt::format("/proc/{}/cwd", options.enter_namespaces_of);
  }

  const pid_t driver = ::getpid();
  pid_t pid = -1;
  int fork_errno = 0;
  Spawner::instance().run([&] {
    pid = ::fork();
    fork_errno = errno;
    if (pid != 0) return;
    // The child dies with the driver, however the driver ends (SIGKILL
    // included). The start script keeps this across its exec of QEMU.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != driver) ::_exit(127);  // the driver died before prctl
    ::setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    if (!options.inherit_stdio) {
      int in = options.stdin_pipe ? in_pipe[0] : options.stdin_fd >= 0 ? options.stdin_fd : ::open("/dev/null", O_RDONLY);
      ::dup2(in, 0);
    }
    // Passed descriptors go to 3, 4, ...: first out of the way of each other.
    int moved[16];
    size_t npass = options.pass_fds.size() < 16 ? options.pass_fds.size() : 16;
    for (size_t i = 0; i < npass; ++i) moved[i] = ::fcntl(options.pass_fds[i], F_DUPFD_CLOEXEC, 64);
    for (size_t i = 0; i < npass; ++i) ::dup2(moved[i], static_cast<int>(3 + i));
    if (!options.capture_stdout && options.stdout_fd >= 0) ::dup2(options.stdout_fd, 1);
    if (options.capture_stdout) {
      ::dup2(out_pipe[1], 1);
      if (!options.capture_stderr_apart) ::dup2(out_pipe[1], 2);
    }
    if (options.capture_stderr_apart) ::dup2(err_pipe[1], 2);
    if (!options.capture_stdout && !options.capture_stderr_apart && options.stderr_fd >= 0) ::dup2(options.stderr_fd, 2);
    int step = 0;  // 0: chdir failed, 1: exec failed, 2: entering the namespaces failed
    if (!ns_paths.empty()) {
      int fds[6];
      bool ok = true;
      for (size_t i = 0; i < 6; ++i) ok = ok && (fds[i] = ::open(ns_paths[i].c_str(), O_RDONLY | O_CLOEXEC)) >= 0;
      int root = ok ? ::open(root_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
      int wd = root >= 0 ? ::open(cwd_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
      ok = wd >= 0;
      for (size_t i = 0; ok && i < 6; ++i) ok = ::setns(fds[i], 0) == 0;
      ok = ok && ::fchdir(root) == 0 && ::chroot(".") == 0 && ::fchdir(wd) == 0;
      if (!ok) {
        int report[2] = {2, errno};
        ssize_t ignored = ::write(exec_error[1], report, sizeof report);
        (void)ignored;
        ::_exit(127);
      }
      cwd = nullptr;
      // The PID namespace is the children's: the program is one.
      pid_t program = ::fork();
      if (program < 0) {
        int report[2] = {2, errno};
        ssize_t ignored = ::write(exec_error[1], report, sizeof report);
        (void)ignored;
        ::_exit(127);
      }
      if (program > 0) {
        // Only the program reports an exec error; its end is this one's.
        ::close(exec_error[1]);
        int status = 0;
        while (::waitpid(program, &status, 0) < 0 && errno == EINTR) {
        }
        ::_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
      }
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    }
    if (options.niceness != 0) {
      int ignored = ::nice(options.niceness);  // a priority it cannot get is no reason to fail
      (void)ignored;
    }
    if (cwd == nullptr || ::chdir(cwd) == 0) {
      step = 1;
      ::execvpe(argv[0], argv.data(), env);
    }
    int report[2] = {step, errno};
    ssize_t ignored = ::write(exec_error[1], report, sizeof report);
    (void)ignored;
    ::_exit(127);
  });
  if (pid < 0) throw Error(fmt::format("fork: {}", std::strerror(fork_errno)));

  auto process = std::unique_ptr<Process>(new Process());
  process->pid_ = pid;
  process->owner_ = driver;
  ::setpgid(pid, pid);  // also here, so the group exists before we signal it
  close_fd(exec_error[1]);
  close_fd(out_pipe[1]);
  close_fd(err_pipe[1]);
  close_fd(in_pipe[0]);
  process->input_fd_ = in_pipe[1];
  process->output_fd_ = out_pipe[0];
  process->error_fd_ = err_pipe[0];

  int report[2] = {0, 0};
  ssize_t n;
  do n = ::read(exec_error[0], report, sizeof report);
  while (n < 0 && errno == EINTR);
  close_fd(exec_error[0]);
  if (n == sizeof report) {
    process->wait(std::nullopt);
    if (report[0] == 0)
      throw Error(fmt::format("cannot start {}: cannot change to directory {}: {}", options.argv[0], options.cwd,
                              std::strerror(report[1])));
    if (report[0] == 2)
      throw Error(fmt::format("cannot start {}: cannot enter the namespaces of process {}: {}", options.argv[0],
                              options.enter_namespaces_of, std::strerror(report[1])));
    throw Error(fmt::format("cannot start {}: {}", options.argv[0], std::strerror(report[1])));
  }

  process->pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (process->pidfd_ < 0) throw Error(fmt::format("pidfd_open: {}", std::strerror(errno)));
  ::fcntl(process->pidfd_, F_SETFD, FD_CLOEXEC);
  return process;
}

Process::~Process() {
  if (!exited_ && pid_ > 0 && owned()) {
    signal_group(SIGKILL);
    wait(std::nullopt);
  }
  close_fd(pidfd_);
  close_fd(output_fd_);
  close_fd(error_fd_);
  close_fd(input_fd_);
}

bool Process::Result::exited_normally() const { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }
int Process::Result::exit_code() const { return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status); }

std::string Process::find_program(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string_view dirs = path ? path : "/usr/sbin:/usr/bin:/sbin:/bin";
  for (;;) {
    size_t colon = dirs.find(':');
    std::string_view dir = dirs.substr(0, colon);
    std::filesystem::path candidate = std::filesystem::path(dir.empty() ? "." : std::string(dir)) / name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
    if (colon == std::string_view::npos) return "";
    dirs.remove_prefix(colon + 1);
  }
}

Process::Result Process::run(const Options& options, std::chrono::milliseconds timeout) {
  auto process = spawn(options);
  auto deadline = Clock::now() + timeout;
  Result result;
  std::vector<pollfd> fds;
  if (process->output_fd_ >= 0) fds.push_back({process->output_fd_, POLLIN, 0});
  if (process->error_fd_ >= 0) fds.push_back({process->error_fd_, POLLIN, 0});
  while (!fds.empty()) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      process->terminate(std::chrono::milliseconds(500));
      throw Error(fmt::format("{} did not finish within {} seconds", options.argv[0], timeout.count() / 1000.0));
    }
    int r = ::poll(fds.data(), fds.size(), static_cast<int>(left));
    if (r < 0 && errno == EINTR) continue;
    for (size_t i = 0; i < fds.size();) {
      if (fds[i].revents == 0) {
        ++i;
        continue;
      }
      char buffer[65536];
      ssize_t n = ::read(fds[i].fd, buffer, sizeof buffer);
      if (n > 0) {
        (fds[i].fd == process->output_fd_ ? result.output : result.error).append(buffer, static_cast<size_t>(n));
        ++i;
      } else {
        fds.erase(fds.begin() + static_cast<long>(i));
      }
    }
  }
  if (!process->wait(deadline)) {
    process->terminate(std::chrono::milliseconds(500));
    throw Error(fmt::format("{} did not finish within {} seconds", options.argv[0], timeout.count() / 1000.0));
  }
  result.status = process->status();
  return result;
}

bool Process::poll() {
  if (exited_) return true;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    exited_ = true;
    status_ = status;
  } else if (r < 0 && errno == ECHILD) {
    exited_ = true;  // reaped elsewhere; status unknown
  }
  return exited_;
}

bool Process::wait(std::optional<Clock::time_point> deadline) {
  if (poll()) return true;
  if (pidfd_ < 0) {
    // Only during spawn's error path: the child is known to be exiting.
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    exited_ = true;
    status_ = status;
    return true;
  }
  for (;;) {
    int timeout_ms = -1;
    if (deadline) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - Clock::now()).count();
      timeout_ms = left < 0 ? 0 : static_cast<int>(std::min<long long>(left + 1, 1 << 30));
    }
    pollfd p{pidfd_, POLLIN, 0};
    int r = ::poll(&p, 1, timeout_ms);
    if (r < 0 && errno == EINTR) continue;
    if (poll()) return true;
    if (r == 0) return false;
  }
}

std::string Process::describe_status() const {
  if (!exited_) return "still running";
  if (WIFEXITED(status_)) return fmt::format("exit code {}", WEXITSTATUS(status_));
  if (WIFSIGNALED(status_)) {
    int sig = WTERMSIG(status_);
    const char* name = sigabbrev_np(sig);
    return fmt::format("signal {} (SIG{})", sig, name ? name : "?");
  }
  return fmt::format("wait status {}", status_);
}

void Process::close_input() { close_fd(input_fd_); }

bool Process::owned() const { return ::getpid() == owner_; }

void Process::signal_group(int sig) {
  if (exited_ || pid_ <= 0 || !owned()) return;
  if (::kill(-pid_, sig) != 0) ::kill(pid_, sig);
}

void Process::terminate(std::chrono::milliseconds grace) {
  if (!owned()) return;  // a fork of the driver (a script's os.fork()) leaves it to the driver
  if (poll()) {
    ::kill(-pid_, SIGKILL);  // the leader is gone; leftovers in its group are not
    return;
  }
  signal_group(SIGTERM);
  if (!wait(Clock::now() + grace)) {
    signal_group(SIGKILL);
    wait(std::nullopt);
  }
  ::kill(-pid_, SIGKILL);  // anything the leader left behind in its group
}

}  // namespace td
