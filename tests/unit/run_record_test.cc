#include "test_driver/run_record.h"

#include <gtest/gtest.h>

#include <thread>

namespace {

struct FakeClock {
  std::chrono::steady_clock::time_point now{};
  td::RunRecord::TimeSource fn() {
    return [this] { return now; };
  }
  void advance(double seconds) {
    now += std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(seconds));
  }
};

}  // namespace

TEST(RunRecord, ClassifiesTheCoresNests) {
  using td::StepKind;
  EXPECT_EQ(td::classify_step("must succeed: true", true, false, false), StepKind::command);
  EXPECT_EQ(td::classify_step("must fail: false", true, false, false), StepKind::command);
  EXPECT_EQ(td::classify_step("waiting for unit multi-user.target", true, false, false), StepKind::wait);
  EXPECT_EQ(td::classify_step("waiting for the VM to finish booting", true, false, false), StepKind::boot);
  EXPECT_EQ(td::classify_step("making screenshot x.png", true, true, false), StepKind::screenshot);
  EXPECT_EQ(td::classify_step("first", false, false, true), StepKind::subtest);
  EXPECT_EQ(td::classify_step("run the VM test script", false, false, false), StepKind::run);
  EXPECT_EQ(td::classify_step("my own nest", false, false, false), StepKind::other);
}

TEST(RunRecord, StepsNestWithTimesLinesAndFailures) {
  FakeClock clock;
  td::RunRecord record(clock.fn());
  record.begin_step("outer", "", td::StepKind::subtest, 3);
  clock.advance(1);
  record.begin_step("must succeed: false", "m", td::StepKind::command, 0);  // no line: the parent's
  clock.advance(2);
  record.end_step(true);
  record.add_problem({false, "AssertionError", "it broke", "Traceback"});
  record.end_step(true);
  record.begin_step("still open", "", td::StepKind::other, 9);
  auto data = record.snapshot();
  ASSERT_EQ(data.steps.size(), 3u);
  EXPECT_EQ(data.steps[0].parent, -1);
  EXPECT_EQ(data.steps[1].parent, 0);
  EXPECT_EQ(data.steps[1].line, 3);
  EXPECT_DOUBLE_EQ(data.steps[1].start, 1);
  EXPECT_DOUBLE_EQ(*data.steps[1].end, 3);
  EXPECT_TRUE(data.steps[1].failed);
  EXPECT_TRUE(data.steps[1].problems.empty());
  ASSERT_EQ(data.steps[0].problems.size(), 1u);
  EXPECT_EQ(data.steps[0].problems[0].message, "it broke");
  EXPECT_FALSE(data.steps[2].end.has_value());
  EXPECT_EQ(data.steps[2].parent, -1);
}

TEST(RunRecord, TextIsKeptOnlyWhenAsked) {
  td::RunRecord record;
  record.add_line(20, "m", "dropped");
  record.add_serial("m", {"dropped"});
  EXPECT_TRUE(record.snapshot().lines.empty());
  EXPECT_TRUE(record.snapshot().serial.empty());
  record.set_keep_text(true);
  record.begin_step("s", "", td::StepKind::other, 0);
  record.add_line(40, "m", "kept");
  record.add_serial("m", {"one", "two"});
  auto data = record.snapshot();
  ASSERT_EQ(data.lines.size(), 1u);
  EXPECT_EQ(data.lines[0].step, 0);
  EXPECT_EQ(data.lines[0].level, 40);
  EXPECT_EQ(data.serial["m"].text, (std::vector<std::string>{"one", "two"}));
  EXPECT_EQ(data.serial["m"].t.size(), 2u);
}

TEST(RunRecord, CommandsInsideAWaitOfTheMachineArePolling) {
  FakeClock clock;
  td::RunRecord record(clock.fn());
  auto start = clock.now;
  clock.advance(0.5);
  record.add_command("m", start);
  record.begin_step("waiting for success: true", "m", td::StepKind::wait, 0);
  start = clock.now;
  clock.advance(0.25);
  record.add_command("m", start);
  record.add_command("other", start);  // not the waiting machine's
  record.end_step(false);
  auto data = record.snapshot();
  EXPECT_DOUBLE_EQ(data.machines["m"].command_seconds, 0.5);
  EXPECT_DOUBLE_EQ(data.machines["m"].polling_seconds, 0.25);
  EXPECT_EQ(data.machines["m"].probes, 1);
  EXPECT_DOUBLE_EQ(data.machines["other"].command_seconds, 0.25);
}

TEST(RunRecord, ScriptLineIsPerThreadAndRestored) {
  EXPECT_EQ(td::RunRecord::ScriptLine::current(), 0);
  {
    td::RunRecord::ScriptLine outer(7);
    {
      td::RunRecord::ScriptLine unknown(0);  // keeps the outer line
      EXPECT_EQ(td::RunRecord::ScriptLine::current(), 7);
    }
    std::thread([] { EXPECT_EQ(td::RunRecord::ScriptLine::current(), 0); }).join();
    EXPECT_EQ(td::RunRecord::ScriptLine::current(), 7);
  }
  EXPECT_EQ(td::RunRecord::ScriptLine::current(), 0);
}

TEST(RunRecord, StepsBeyondTheLimitAreCountedNotKept) {
  td::RunRecord record;
  record.begin_step("outer", "", td::StepKind::subtest, 1);
  for (size_t i = 1; i < td::RunRecord::kMaxSteps; ++i) {
    record.begin_step("must succeed: true", "m", td::StepKind::command, 2);
    record.end_step(false);
  }
  record.begin_step("one too many", "m", td::StepKind::command, 3);
  record.add_problem({false, "E", "lands on the innermost kept step", ""});
  record.end_step(true);
  record.end_step(true);  // outer
  auto data = record.snapshot();
  EXPECT_EQ(data.steps.size(), td::RunRecord::kMaxSteps);
  EXPECT_EQ(data.dropped_steps, 1u);
  ASSERT_EQ(data.steps[0].problems.size(), 1u);
  EXPECT_TRUE(data.steps[0].end.has_value());
}
