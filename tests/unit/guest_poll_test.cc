// guest_poll_command, run by a real bash behind a ShellSession.
#include "real_bash_session.h"

using namespace std::chrono_literals;
using td_test::GuestCommandsTest;
using td_test::Stopwatch;

// ---- guest_poll_command ----

TEST_F(GuestCommandsTest, APollOfAConditionThatHoldsEndsAtOnce) {
  EXPECT_EQ(poll("true", 30, 60).status, 0);
  EXPECT_EQ(run("echo next").output, "next\n");
}

TEST_F(GuestCommandsTest, APollSeesAConditionTurnTrueWhileItWaits) {
  std::thread maker([&] {
    std::this_thread::sleep_for(300ms);
    std::filesystem::create_directories(dir / "late");
  });
  auto result = poll("test -e " + file("late"), 30, 60);
  maker.join();
  EXPECT_EQ(result.status, 0);
  EXPECT_TRUE(std::filesystem::exists(dir / "late"));
}

TEST_F(GuestCommandsTest, APollEndsWithItsOwnStatusWhenItsTimeIsUp) {
  Stopwatch watch;
  auto result = poll("test -e " + file("never"), 0.5, 60);
  EXPECT_EQ(result.status, td::kGuestPollTimedOut);
  EXPECT_GE(watch.seconds(), 0.5);
  EXPECT_EQ(run("echo next").output, "next\n");
}

TEST_F(GuestCommandsTest, APollsOwnAssignmentsPersistAcrossTries) {
  // The Unix socket wait raises the pause (p) from within its condition.
  std::thread maker([&] {
    std::this_thread::sleep_for(300ms);
    std::filesystem::create_directories(dir / "late");
  });
  auto result = poll("{ p=0.1; test -e " + file("late") + "; }", 30, 60);
  maker.join();
  EXPECT_EQ(result.status, 0);
}

TEST_F(GuestCommandsTest, AnInterruptedPollIsToldToStopSoTheNextCommandAnswers) {
  std::thread user([] {
    std::this_thread::sleep_for(100ms);
    td::interrupt::raise();
  });
  EXPECT_THROW(poll("test -e " + file("never"), 600, 700), td::Interrupted);
  user.join();
  td::interrupt::clear();
  EXPECT_TRUE(session.has_stale_command());
  // Without the abandon line the poll would hold the shell for 600 s; the
  // next command (bounded by 20 s) gets its answer.
  EXPECT_EQ(run("echo after", 20).output, "after\n");
  EXPECT_FALSE(session.has_stale_command());
  EXPECT_EQ(run("echo again").output, "again\n");
}

TEST_F(GuestCommandsTest, TheAbandonLineIsHarmlessWhenThePollHasEndedAlready) {
  std::thread user([] {
    std::this_thread::sleep_for(100ms);
    td::interrupt::raise();
  });
  // Interrupted while the (finished) poll's reply is being waited for: the
  // line then reaches the shell itself, as an empty command.
  EXPECT_THROW(run_wrapped("sleep 0.3; " + td::guest_poll_command("true", td::Duration(5)), 60,
                           td::kGuestPollAbandonLine),
               td::Interrupted);
  user.join();
  td::interrupt::clear();
  std::this_thread::sleep_for(400ms);
  EXPECT_EQ(run("echo after", 20).output, "after\n");
  EXPECT_EQ(run("echo again").output, "again\n");
}


// ---- guest_unit_wait_command (the systemd guest runs it for real: test_systemd.py) ----

TEST_F(GuestCommandsTest, AUnitWaitWithoutARunningSystemdSaysItCannotWait) {
  // This host runs no systemd (or has no systemctl): the driver polls instead.
  Stopwatch watch;
  auto result = run(td::guest_unit_wait_command("'sshd.service'", 30));
  EXPECT_EQ(result.status, td::kUnitWaitUnusable);
  EXPECT_LT(watch.seconds(), 10);
  EXPECT_EQ(run("echo next").output, "next\n");
}
