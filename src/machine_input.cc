// Machine: the keyboard (QEMU sendkey) and Ctrl+Alt+Delete.
#include <fmt/format.h>

#include "test_driver/errors.h"
#include "test_driver/interrupt.h"
#include "test_driver/keys.h"
#include "test_driver/machine.h"

namespace td {

void Machine::send_key(const std::string& key, double delay, bool log) {
  std::string name = key_name(key);
  std::unique_ptr<Logger::Nest> nest;
  if (log) nest = nested(fmt::format("sending key {}", name));
  press_key(name, delay);
}

void Machine::press_key(const std::string& name, double delay) {
  send_monitor_command("sendkey " + name);
  if (delay > 0) interrupt::sleep_for(std::chrono::duration<double>(delay));
}

void Machine::send_chars(const std::string& chars, double delay) {
  auto nest = nested(fmt::format("sending keys ‘{}‘", chars));
  // One key per UTF-8 character.
  for (size_t i = 0; i < chars.size();) {
    size_t n = 1;
    while (i + n < chars.size() && (static_cast<unsigned char>(chars[i + n]) & 0xC0) == 0x80) ++n;
    press_key(key_name(chars.substr(i, n)), delay);
    i += n;
  }
}

void Machine::reboot() {
  send_key("ctrl-alt-delete");
  set_connected(false);
}

}  // namespace td
