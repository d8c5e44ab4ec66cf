// A child process the driver started (QEMU via its start script, vde_switch,
// host tools): its pid, a pidfd to wait on without polling, and the read end
// of its output. The child leads its own process group, so that killing the
// group also kills whatever a start script spawned.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "test_driver/duration.h"

namespace td {

class Process {
 public:

  struct Options {
    std::vector<std::string> argv;  // argv[0] is looked up in PATH
    std::vector<std::string> env;   // KEY=VALUE; empty means inherit
    std::string cwd;                // "" means inherit
    int stdin_fd = -1;              // -1 means /dev/null (unless stdin_pipe or inherit_stdio)
    bool stdin_pipe = false;        // a pipe the driver writes to (input_fd())
    bool capture_stdout = true;     // stdout and stderr to one pipe
    bool capture_stderr_apart = false;  // stderr to a pipe of its own
    int stdout_fd = -1;             // with capture_stdout false: stdout goes here
    int stderr_fd = -1;             // with neither capture: stderr goes here (-1: the driver's)
    bool inherit_stdio = false;     // the driver's own stdin/stdout/stderr (for socat)
    std::vector<int> pass_fds;      // become fds 3, 4, ... in the child
    // Runs the program inside the namespaces (mount, UTS, IPC, network,
    // PID, cgroup), root and working directory of this process (a
    // container's init), as nsenter does: the child enters them and forks
    // the program, then only waits for it and exits with its status. Unlike
    // nsenter, it never stops itself when the program is stopped (an init
    // shutting down stops every process of its namespace, and a stopped
    // nsenter would never reap the program, so the namespace never ends).
    // -1: none. The pid is the waiting child's; the program is in its group.
    pid_t enter_namespaces_of = -1;
    int niceness = 0;  // added to the child's nice value (background work such as OCR renderings)
  };

  // What a finished host tool did.
  struct Result {
    int status = 0;  // raw wait status
    std::string output;  // stdout (and stderr unless capture_stderr_apart)
    std::string error;   // stderr when capture_stderr_apart
    bool exited_normally() const;
    int exit_code() const;
  };

  // Runs a host tool to completion (no shell), collecting its output.
  // Throws td::Error when it cannot start or runs past the timeout (then it
  // is killed).
  static Result run(const Options& options, std::chrono::milliseconds timeout);

  // The program's path as spawn's exec would find it in $PATH (an empty
  // entry is the working directory), or "" when it is not there.
  static std::string find_program(const std::string& name);

  // Starts the process. Throws td::Error naming the program and the reason
  // when it cannot be started (not found, not executable, bad cwd).
  static std::unique_ptr<Process> spawn(const Options& options);

  // Kills the process group and reaps the child if it still runs.
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  // Readable when the process has exited.
  int pidfd() const { return pidfd_; }
  // The read end of the output pipe (-1 when not captured). The Process
  // keeps ownership.
  int output_fd() const { return output_fd_; }
  int error_fd() const { return error_fd_; }
  // The write end of the stdin pipe (-1 unless stdin_pipe).
  int input_fd() const { return input_fd_; }
  // Closes the stdin pipe: the child reads the end of its input.
  void close_input();

  // Reaps the child if it has exited; true when it has.
  bool poll();
  // Waits until the child exits or the deadline passes; true when it exited.
  bool wait(std::optional<Clock::time_point> deadline);
  bool exited() const { return exited_; }
  // The raw wait status; only meaningful once exited().
  int status() const { return status_; }
  // "exit code N" or "signal N (SIGNAME)".
  std::string describe_status() const;

  // Sends `sig` to the whole process group.
  void signal_group(int sig);
  // SIGTERM to the group, then SIGKILL after `grace`; reaps the child.
  void terminate(std::chrono::milliseconds grace);
  // Whether this process is the one that spawned the child: only that one
  // signals it (signal_group, terminate, the destructor), never a fork of
  // it (a test script's os.fork()).
  bool owned() const;

 private:
  Process() = default;
  pid_t pid_ = -1;
  pid_t owner_ = -1;
  int pidfd_ = -1;
  int output_fd_ = -1;
  int error_fd_ = -1;
  int input_fd_ = -1;
  bool exited_ = false;
  int status_ = 0;
};

}  // namespace td
