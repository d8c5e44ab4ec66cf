// Machine: keyboard (QEMU sendkey), virtual terminals (/dev/vcsN) and X11
// windows, and an interactive shell for test development.
#include <fmt/format.h>

#include "test_driver/errors.h"
#include "test_driver/interrupt.h"
#include "test_driver/keys.h"
#include "test_driver/machine.h"
#include "test_driver/retry.h"
#include "test_driver/shell_words.h"

namespace td {

void Machine::send_key(const std::string& key, double delay, bool log) {
  std::string name = key_name(key);
  std::unique_ptr<Logger::Nest> nest;
  if (log) nest = nested(fmt::format("sending key {}", name));
  send_monitor_command("sendkey " + name);
  if (delay > 0) interrupt::sleep_for(std::chrono::duration<double>(delay));
}

void Machine::send_chars(const std::string& chars, double delay) {
  auto nest = nested(fmt::format("sending keys ‘{}‘", chars));
  // One key per UTF-8 character.
  for (size_t i = 0; i < chars.size();) {
    size_t n = 1;
    while (i + n < chars.size() && (static_cast<unsigned char>(chars[i + n]) & 0xC0) == 0x80) ++n;
    send_key(chars.substr(i, n), delay, false);
    i += n;
  }
}

namespace {

std::string tty_text_command(const std::string& tty) {
  return fmt::format("fold -w$(stty -F /dev/tty{0} size | awk '{{print $2}}') /dev/vcs{0}", shell_quote(tty));
}

}  // namespace

std::string Machine::get_tty_text(const std::string& tty) { return execute(tty_text_command(tty)).second; }

void Machine::wait_until_tty_matches(const std::string& tty, const std::string& regex_text,
                                     const TextMatcher& matches, double timeout) {
  auto nest = nested(fmt::format("waiting for {} to appear on tty {}", regex_text, tty));
  auto deadline = host_deadline(timeout);
  retry(
      [&](bool last_try) {
        std::string text = probe(tty_text_command(tty), deadline).second;
        if (last_try)
          log(fmt::format("Last chance to match /{}/ on TTY{}, which currently contains: {}", regex_text, tty, text));
        return matches(text);
      },
      timeout);
}

void Machine::dump_tty_contents(const std::string& tty) {
  execute(fmt::format("fold -w 80 /dev/vcs{} | systemd-cat", shell_quote(tty)));
}

void Machine::sleep(double seconds) { succeed({fmt::format("sleep {}", seconds)}); }

void Machine::wait_for_x(double timeout) {
  auto nest = nested("waiting for the X11 server");
  auto deadline = host_deadline(timeout);
  retry(
      [&](bool) {
        auto [status, out] =
            probe("journalctl -b SYSLOG_IDENTIFIER=systemd | grep \"Reached target Current graphical\"", deadline);
        if (status != 0) return false;
        return probe("[ -e /tmp/.X11-unix/X0 ]", deadline).first == 0;
      },
      timeout);
}

std::vector<std::string> Machine::get_window_names() {
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

void Machine::wait_for_window(const std::string& regex_text, const TextMatcher& matches, double timeout) {
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
          if (matches(n)) return true;
        return false;
      },
      timeout);
}

void Machine::reboot() {
  send_key("ctrl-alt-delete");
  connected_ = false;
}

}  // namespace td
