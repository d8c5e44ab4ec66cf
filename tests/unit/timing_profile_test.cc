#include "test_driver/timing_profile.h"

#include <gtest/gtest.h>

namespace {

td::RunRecord::Step step(const char* name, const char* machine, td::StepKind kind, double start, double end,
                         int parent = -1, int line = 0) {
  td::RunRecord::Step s;
  s.name = name;
  s.machine = machine;
  s.kind = kind;
  s.start = start;
  s.end = end;
  s.parent = parent;
  s.line = line;
  return s;
}

}  // namespace

TEST(TimingProfile, BootCommandsWaitsAndPollingPerMachine) {
  using E = td::RunRecord::MachineEvent;
  td::RunRecord::Data data;
  data.now = 100;
  auto& m = data.machines["server"];
  m.events = {{1, E::started}, {11, E::connected}, {50, E::stopped}, {60, E::started}, {65, E::connected}};
  m.command_seconds = 3;
  m.polling_seconds = 2;
  data.steps.push_back(step("a subtest", "", td::StepKind::subtest, 0, 90));
  data.steps.push_back(step("waiting for unit x", "server", td::StepKind::wait, 20, 30, 0, 4));
  // A wait inside a wait counts once.
  data.steps.push_back(step("waiting for file y", "server", td::StepKind::wait, 21, 29, 1, 4));
  data.steps.push_back(step("must succeed: sleep 12", "server", td::StepKind::command, 30, 42, 0, 5));
  auto profile = td::TimingProfile::of(data);
  ASSERT_EQ(profile.machines.size(), 1u);
  EXPECT_DOUBLE_EQ(profile.machines[0].boot, 15);
  EXPECT_EQ(profile.machines[0].boots, 2);
  EXPECT_DOUBLE_EQ(profile.machines[0].waits, 10);
  EXPECT_DOUBLE_EQ(profile.machines[0].polling, 2);
  EXPECT_DOUBLE_EQ(profile.machines[0].commands, 3);
  // Subtests are not steps of their own here; the slowest first.
  ASSERT_EQ(profile.slowest.size(), 3u);
  EXPECT_EQ(profile.slowest[0].name, "must succeed: sleep 12");
  EXPECT_EQ(profile.slowest[0].line, 5);
  EXPECT_EQ(profile.slowest[1].name, "waiting for unit x");
  auto lines = profile.to_lines("test.py");
  bool named = false;
  for (const auto& l : lines) named = named || l.find("server: must succeed: sleep 12  (test.py:5)") != std::string::npos;
  EXPECT_TRUE(named);
}

TEST(TimingProfile, KeepsTheTenSlowest) {
  td::RunRecord::Data data;
  data.now = 100;
  for (int i = 0; i < 25; ++i) data.steps.push_back(step("must succeed: x", "m", td::StepKind::command, 0, i));
  auto profile = td::TimingProfile::of(data);
  ASSERT_EQ(profile.slowest.size(), 10u);
  EXPECT_DOUBLE_EQ(profile.slowest[0].seconds, 24);
  EXPECT_DOUBLE_EQ(profile.slowest[9].seconds, 15);
}
