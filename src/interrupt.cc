#include "test_driver/interrupt.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>

#include "test_driver/errors.h"

namespace td::interrupt {
namespace {

struct Pipe {
  int fds[2] = {-1, -1};
  Pipe() {
    if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) fds[0] = fds[1] = -1;
  }
};

Pipe& the_pipe() {
  static Pipe pipe;
  return pipe;
}

}  // namespace

int write_fd() { return the_pipe().fds[1]; }
int read_fd() { return the_pipe().fds[0]; }

void raise() {
  char byte = 1;
  ssize_t ignored = ::write(write_fd(), &byte, 1);
  (void)ignored;
}

bool pending() {
  pollfd p{read_fd(), POLLIN, 0};
  return ::poll(&p, 1, 0) == 1;
}

void clear() {
  char buffer[64];
  while (::read(read_fd(), buffer, sizeof buffer) > 0) {
  }
}

void check() {
  if (pending()) throw Interrupted();
}

void sleep_for(std::chrono::duration<double> duration) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::nanoseconds>(duration);
  for (;;) {
    // Rounded up: a truncated sub-millisecond rest would make callers spin.
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return;
    pollfd p{read_fd(), POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r == 1) throw Interrupted();
  }
}

}  // namespace td::interrupt
