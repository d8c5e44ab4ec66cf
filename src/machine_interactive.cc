// Machine: interactive sessions for the REPL: the serial console and the
// backdoor shell forwarded to the terminal.
#include <fmt/format.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "test_driver/errors.h"
#include "test_driver/interrupt.h"
#include "test_driver/machine.h"
#include "test_driver/shell_session.h"

namespace td {

void Machine::console_interact() {
  log("Forwarding stdin to the serial console; Ctrl-D ends");
  for (;;) {
    pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {interrupt::read_fd(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      throw Error(fmt::format("console_interact: poll: {}", std::strerror(errno)));
    }
    if (fds[1].revents) throw Interrupted();
    char buffer[4096];
    ssize_t n = ::read(STDIN_FILENO, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    send_console(std::string(buffer, static_cast<size_t>(n)));
  }
  log("Closing connection to the console");
}

void Machine::send_console(const std::string& chars) {
  std::lock_guard lock(mutex_);
  if (!process_ || process_->input_fd() < 0)
    throw MachineError(fmt::format("{}: not running, cannot write to its console", label()));
  size_t done = 0;
  while (done < chars.size()) {
    ssize_t n = ::write(process_->input_fd(), chars.data() + done, chars.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail_channel("writing to the serial console", std::strerror(errno));
    done += static_cast<size_t>(n);
  }
}

void Machine::shell_interact() {
  std::lock_guard lock(mutex_);
  connect();
  log("Terminal is ready (there is no initial prompt):");
  Process::Options socat;
  // Debian's socat is built without readline: line editing where it can.
  Process::Options probe;
  probe.argv = {"socat", "-V"};
  bool readline = Process::run(probe, std::chrono::seconds(10)).output.find("#define WITH_READLINE 1") != std::string::npos;
  socat.argv = {"socat", readline ? "READLINE,prompt=$ " : "STDIO", "FD:3"};
  socat.inherit_stdio = true;
  socat.capture_stdout = false;
  auto& shell = session().socket();
  socat.pass_fds = {shell.native_handle()};
  // O_NONBLOCK belongs to the open file, which socat shares: blocking for it.
  shell.native_non_blocking(false);
  auto process = Process::spawn(socat);
  process->wait(std::nullopt);
  shell.native_non_blocking(true);
  if (!process->exited() || WEXITSTATUS(process->status()) != 0)
    log(fmt::format("socat ended with {}", process->describe_status()));
}

}  // namespace td
