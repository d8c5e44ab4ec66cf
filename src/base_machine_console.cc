// BaseMachine: the machine's console lines (a VM's serial console, a
// container's /dev/console), as its SerialReader keeps them.
#include <fmt/format.h>

#include "test_driver/base_machine.h"
#include "test_driver/errors.h"
#include "test_driver/interrupt.h"
#include "test_driver/serial_reader.h"

namespace td {

std::string BaseMachine::console_log() const {
  SerialReader* reader = console();
  return reader ? reader->all() : "";
}

void BaseMachine::wait_for_console_text(const TextPattern& pattern, std::optional<Duration> timeout) {
  const std::string& regex_text = pattern.text;
  auto nest = nested(fmt::format("waiting for {} to appear on console", regex_text));
  auto deadline = Deadline::after_or_never(timeout);
  size_t seen = console_cursor_;
  for (;;) {
    SerialReader* reader = console();
    if (!reader) throw MachineError(fmt::format("{}: the machine is not running, so its console is silent", label()));
    size_t count = reader->size();
    if (count > seen || count == console_cursor_) {
      // Lines not yet consumed, including those from before this call.
      seen = count;
      if (count > console_cursor_ && pattern.matches(reader->join(console_cursor_, count))) {
        console_cursor_ = count;
        return;
      }
    }
    if (reader->ended())
      fail_channel(fmt::format("waiting for {} to appear on console", regex_text), "the console ended");
    interrupt::check();
    if (deadline.passed())
      throw RequestedAssertionFailed(fmt::format("{}: {} did not appear on the console within {} seconds", label(),
                                                 regex_text, timeout->to_string()));
    // Wakes at least every 200 ms to notice interrupts.
    auto slice = Deadline::at(Clock::now() + std::chrono::milliseconds(200));
    reader->wait_for_more(seen, deadline.sooner(slice).time_point());
  }
}

}  // namespace td
