// BaseMachine: the guest's virtual terminals (/dev/vcsN) and its X11
// windows, read through the shell.
#include <fmt/format.h>

#include "test_driver/base_machine.h"
#include "test_driver/errors.h"
#include "test_driver/retry.h"
#include "test_driver/shell_words.h"

namespace td {

namespace {

std::string tty_text_command(const std::string& tty) {
  return fmt::format("fold -w$(stty -F /dev/tty{0} size | awk '{{print $2}}') /dev/vcs{0}", shell_quote(tty));
}

}  // namespace

std::string BaseMachine::get_tty_text(const std::string& tty) { return execute(tty_text_command(tty)).second; }

void BaseMachine::wait_until_tty_matches(const std::string& tty, const TextPattern& pattern, Duration timeout) {
  const std::string& regex_text = pattern.text;
  auto nest = nested(fmt::format("waiting for {} to appear on tty {}", regex_text, tty));
  auto wait_deadline = Deadline::after(timeout);
  auto deadline = host_deadline(wait_deadline);
  retry_until(
      [&](bool last_try) {
        std::string text = probe(tty_text_command(tty), deadline).second;
        if (last_try)
          log(fmt::format("Last chance to match /{}/ on TTY{}, which currently contains: {}", regex_text, tty, text));
        return pattern.matches(text);
      },
      wait_deadline, timeout);
}

void BaseMachine::dump_tty_contents(const std::string& tty) {
  execute(fmt::format("fold -w 80 /dev/vcs{} | systemd-cat", shell_quote(tty)));
}

void BaseMachine::wait_for_x(Duration timeout) {
  auto nest = nested("waiting for the X11 server");
  auto wait_deadline = Deadline::after(timeout);
  auto deadline = host_deadline(wait_deadline);
  retry_until(
      [&](bool) {
        auto [status, out] =
            probe("journalctl -b SYSLOG_IDENTIFIER=systemd | grep \"Reached target Current graphical\"", deadline);
        if (status != 0) return false;
        return probe("[ -e /tmp/.X11-unix/X0 ]", deadline).first == 0;
      },
      wait_deadline, timeout);
}

std::vector<std::string> BaseMachine::get_window_names() {
  std::string out = succeed({R"(xwininfo -root -tree | sed 's/.*0x[0-9a-f]* \"\([^\"]*\)\".*/\1/; t; d')"});
  std::vector<std::string> names;
  size_t start = 0;
  while (start < out.size()) {
    size_t nl = out.find('\n', start);
    if (nl == std::string::npos) nl = out.size();
    names.push_back(out.substr(start, nl - start));
    start = nl + 1;
  }
  return names;
}

void BaseMachine::wait_for_window(const TextPattern& pattern, Duration timeout) {
  const std::string& regex_text = pattern.text;
  auto nest = nested("waiting for a window to appear");
  retry(
      [&](bool last_try) {
        auto names = get_window_names();
        if (last_try) {
          std::string all;
          for (const auto& n : names) all += (all.empty() ? "" : ", ") + n;
          log(fmt::format("Last chance to match {} on the window list, which currently contains: {}", regex_text, all));
        }
        for (const auto& n : names)
          if (pattern.matches(n)) return true;
        return false;
      },
      timeout);
}

}  // namespace td
