#include "test_driver/process.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>

#include "test_driver/errors.h"

namespace {
std::unique_ptr<td::Process> spawn_argv(std::vector<std::string> argv) {
  td::Process::Options options;
  options.argv = std::move(argv);
  return td::Process::spawn(options);
}
}  // namespace

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
  // Dead means gone or a zombie waiting for init to reap it.
  auto alive = [&] {
    std::ifstream stat("/proc/" + std::to_string(child) + "/stat");
    std::string pid, comm, state;
    return stat >> pid >> comm >> state && state != "Z";
  };
  for (int i = 0; i < 100 && alive(); ++i) ::usleep(10000);
  EXPECT_FALSE(alive()) << "the grandchild survived";
}

TEST(Process, WaitHonoursDeadline) {
  auto p = spawn_argv({"sleep", "5"});
  EXPECT_FALSE(p->wait(std::chrono::steady_clock::now() + std::chrono::milliseconds(100)));
  p->signal_group(SIGKILL);
  EXPECT_TRUE(p->wait(std::nullopt));
  EXPECT_EQ(p->describe_status(), "signal 9 (SIGKILL)");
}
