#include "test_driver/container_process.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "test_driver/process.h"

namespace {

std::unique_ptr<td::Process> spawn_argv(std::vector<std::string> argv) {
  td::Process::Options options;
  options.argv = std::move(argv);
  return td::Process::spawn(options);
}

// Polls `probe` for up to two seconds (the children need a moment to appear).
template <typename Probe>
auto eventually(Probe probe) {
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  auto result = probe();
  while (!result && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    result = probe();
  }
  return result;
}

}  // namespace

TEST(ContainerProcess, ChildrenAreListed) {
  auto parent = spawn_argv({"sh", "-c", "sleep 30 & sleep 30 & wait"});
  auto two = eventually([&] { return td::child_processes(parent->pid()).size() == 2; });
  EXPECT_TRUE(two);
}

TEST(ContainerProcess, FindsPidOneOfANestedPidNamespaceBelowTheScript) {
  // A stand-in for a start script: sh runs unshare, whose child is PID 1 of
  // a new PID namespace (as nspawn's is). Needs root, as containers do.
  ASSERT_EQ(::geteuid(), 0u) << "this test, like systemd-nspawn, needs root";
  auto script = spawn_argv({"sh", "-c", "unshare --pid --fork -- sleep 30; true"});
  auto init = eventually([&] { return td::find_container_init(script->pid()); });
  ASSERT_TRUE(init.has_value());
  // It is the sleep: unshare's only child.
  auto shell_children = td::child_processes(script->pid());
  ASSERT_EQ(shell_children.size(), 1u);
  auto unshare_children = td::child_processes(shell_children[0]);
  ASSERT_EQ(unshare_children.size(), 1u);
  EXPECT_EQ(*init, unshare_children[0]);
}

TEST(ContainerProcess, NoInitBelowAProcessWithoutContainer) {
  auto script = spawn_argv({"sh", "-c", "sleep 30; true"});
  ASSERT_TRUE(eventually([&] { return !td::child_processes(script->pid()).empty(); }));
  EXPECT_FALSE(td::find_container_init(script->pid()).has_value());
}

TEST(ContainerProcess, NoInitOfAGoneProcess) {
  auto done = spawn_argv({"true"});
  done->wait(std::nullopt);
  EXPECT_FALSE(td::find_container_init(done->pid()).has_value());
}
