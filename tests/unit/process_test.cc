#include "test_driver/process.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <sys/wait.h>

#include <fstream>
#include <thread>

#include "test_driver/errors.h"

namespace {
std::unique_ptr<td::Process> spawn_argv(std::vector<std::string> argv) {
  td::Process::Options options;
  options.argv = std::move(argv);
  return td::Process::spawn(options);
}

// Dead means gone or a zombie waiting for init to reap it.
bool alive(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string field, comm, state;
  return stat >> field >> comm >> state && state != "Z";
}
}  // namespace

TEST(Process, ChildOutlivesTheThreadThatSpawnedIt) {
  // PR_SET_PDEATHSIG is per thread: spawning must not tie the child to a
  // short-lived thread (start_all starts each machine on one).
  std::unique_ptr<td::Process> p;
  std::thread([&] { p = spawn_argv({"sleep", "100"}); }).join();
  ::usleep(200000);
  EXPECT_TRUE(alive(p->pid()));
  EXPECT_FALSE(p->poll());
}

TEST(Process, ChildDiesWithTheDriver) {
  // A stand-in driver forks, spawns `sleep` from a thread, reports its pid
  // and dies by SIGKILL: the sleep must die too.
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  pid_t driver = ::fork();
  ASSERT_GE(driver, 0);
  if (driver == 0) {
    std::unique_ptr<td::Process> p;
    std::thread([&] { p = spawn_argv({"sleep", "100"}); }).join();
    pid_t pid = p->pid();
    if (::write(fds[1], &pid, sizeof pid) != sizeof pid) ::_exit(1);
    ::pause();
    ::_exit(0);
  }
  ::close(fds[1]);
  pid_t child = -1;
  ASSERT_EQ(::read(fds[0], &child, sizeof child), static_cast<ssize_t>(sizeof child));
  ::close(fds[0]);
  EXPECT_TRUE(alive(child));
  ::kill(driver, SIGKILL);
  ::waitpid(driver, nullptr, 0);
  auto start = std::chrono::steady_clock::now();
  while (alive(child) && std::chrono::steady_clock::now() - start < std::chrono::seconds(2)) ::usleep(5000);
  EXPECT_FALSE(alive(child)) << "the child survived its driver";
  ::kill(child, SIGKILL);  // in case it did
}

TEST(Process, RunsAndReportsExitStatus) {
  auto p = spawn_argv({"sh", "-c", "echo out; echo err >&2; exit 3"});
  ASSERT_TRUE(p->wait(std::nullopt));
  EXPECT_EQ(p->describe_status(), "exit code 3");
  char buffer[64] = {};
  ssize_t n = ::read(p->output_fd(), buffer, sizeof buffer - 1);
  EXPECT_EQ(std::string(buffer, static_cast<size_t>(n)), "out\nerr\n");
}

TEST(Process, NamesAMissingProgram) {
  try {
    spawn_argv({"/no/such/program"});
    FAIL();
  } catch (const td::Error& e) {
    EXPECT_STREQ(e.what(), "cannot start /no/such/program: No such file or directory");
  }
}

TEST(Process, TerminateKillsTheWholeGroup) {
  auto p = spawn_argv({"sh", "-c", "trap '' TERM; sleep 100 & echo $!; wait"});
  char buffer[32] = {};
  ssize_t n = ::read(p->output_fd(), buffer, sizeof buffer - 1);
  ASSERT_GT(n, 0);
  pid_t child = std::stoi(buffer);
  auto start = std::chrono::steady_clock::now();
  p->terminate(std::chrono::milliseconds(200));
  EXPECT_TRUE(p->exited());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  for (int i = 0; i < 100 && alive(child); ++i) ::usleep(10000);
  EXPECT_FALSE(alive(child)) << "the grandchild survived";
}

TEST(Process, WaitHonoursDeadline) {
  auto p = spawn_argv({"sleep", "5"});
  EXPECT_FALSE(p->wait(std::chrono::steady_clock::now() + std::chrono::milliseconds(100)));
  p->signal_group(SIGKILL);
  EXPECT_TRUE(p->wait(std::nullopt));
  EXPECT_EQ(p->describe_status(), "signal 9 (SIGKILL)");
}

TEST(Process, CloseInputEndsTheChildsInput) {
  td::Process::Options options;
  options.argv = {"cat"};
  options.stdin_pipe = true;
  auto process = td::Process::spawn(options);
  ASSERT_GE(process->input_fd(), 0);
  EXPECT_FALSE(process->wait(td::Clock::now() + std::chrono::milliseconds(200)));  // cat waits for input
  process->close_input();
  EXPECT_EQ(process->input_fd(), -1);
  ASSERT_TRUE(process->wait(td::Clock::now() + std::chrono::seconds(10)));
  EXPECT_TRUE(WIFEXITED(process->status()) && WEXITSTATUS(process->status()) == 0);
}

TEST(Process, StderrFdTakesTheChildsErrors) {
  char path[] = "/tmp/td-process-stderr-XXXXXX";
  int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  td::Process::Options options;
  options.argv = {"ls", "/nonexistent-td-process-test"};
  options.capture_stdout = false;
  options.stderr_fd = fd;
  auto process = td::Process::spawn(options);
  ASSERT_TRUE(process->wait(td::Clock::now() + std::chrono::seconds(10)));
  ::close(fd);
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ::unlink(path);
  EXPECT_NE(text.find("nonexistent-td-process-test"), std::string::npos) << text;
}
