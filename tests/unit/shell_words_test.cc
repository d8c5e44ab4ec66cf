#include "test_driver/shell_words.h"

#include <gtest/gtest.h>

#include "test_driver/errors.h"

TEST(ShellWords, QuotesLikeShlex) {
  EXPECT_EQ(td::shell_quote("abc-1.2/x"), "abc-1.2/x");
  EXPECT_EQ(td::shell_quote(""), "''");
  EXPECT_EQ(td::shell_quote("a b"), "'a b'");
  EXPECT_EQ(td::shell_quote("it's"), "'it'\"'\"'s'");
  EXPECT_EQ(td::shell_quote("$(reboot);"), "'$(reboot);'");
}

TEST(ShellWords, SplitsLikeShlex) {
  using V = std::vector<std::string>;
  EXPECT_EQ(td::split_command_line("  qemu -m 384  "), (V{"qemu", "-m", "384"}));
  EXPECT_EQ(td::split_command_line("a 'b c' \"d \\\"e\" f\\ g"), (V{"a", "b c", "d \"e", "f g"}));
  EXPECT_EQ(td::split_command_line("''"), (V{""}));
  EXPECT_EQ(td::split_command_line(""), V{});
  EXPECT_THROW(td::split_command_line("'open"), td::Error);
}

TEST(ShellWords, AnsiCQuotingKeepsEveryByte) {
  EXPECT_EQ(td::bash_ansi_c_quote("echo 'hi' \\ $x"), "$'echo \\'hi\\' \\\\ $x'");
  EXPECT_EQ(td::bash_ansi_c_quote("a\nb\x01"), "$'a\\nb\\x01'");
}
