// Quoting for the guest's shell and splitting of command lines, the two ways
// the driver turns strings into commands without a host shell.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace td {

// Quotes `word` for a POSIX shell like Python's shlex.quote: unchanged when
// it only has safe characters, else in single quotes.
std::string shell_quote(std::string_view word);

// Quotes `text` as a bash ANSI-C string ($'...'): every byte survives, and
// no content can end the quote early.
std::string bash_ansi_c_quote(std::string_view text);

// Joins words with spaces, each shell-quoted.
std::string shell_join(const std::vector<std::string>& words);

// Splits a command line into words like Python's shlex.split (POSIX mode):
// whitespace separates words, single and double quotes group, backslash
// escapes. No expansion of any kind. Throws td::Error on an unclosed quote.
std::vector<std::string> split_command_line(std::string_view line);

}  // namespace td
