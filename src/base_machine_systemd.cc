// BaseMachine: systemd units and jobs, through systemctl in the guest.
#include <fmt/format.h>

#include <algorithm>
#include <iterator>

#include "test_driver/errors.h"
#include "test_driver/base_machine.h"
#include "test_driver/guest_poll.h"
#include "test_driver/retry.h"
#include "test_driver/shell_words.h"
#include "test_driver/systemctl_show.h"

namespace td {

namespace {

std::string systemctl_command(const std::string& q, const std::optional<std::string>& user) {
  if (!user) return "systemctl " + q;
  // As the reference: a login shell of the user runs `systemctl --user`.
  std::string escaped;
  for (char c : q) escaped += c == '\'' ? std::string("\\'") : std::string(1, c);
  return fmt::format("su -l {} --shell /bin/sh -c $'XDG_RUNTIME_DIR=/run/user/`id -u` systemctl --user {}'",
                     shell_quote(*user), escaped);
}

}  // namespace

std::pair<int, std::string> BaseMachine::systemctl(const std::string& q, const std::optional<std::string>& user) {
  return execute(systemctl_command(q, user));
}

std::map<std::string, std::string> BaseMachine::get_unit_info(const std::string& unit,
                                                          const std::optional<std::string>& user) {
  return unit_info(unit, user, std::nullopt);
}

std::map<std::string, std::string> BaseMachine::unit_info(const std::string& unit, const std::optional<std::string>& user,
                                                      std::optional<Deadline> probe_deadline) {
  std::string command = systemctl_command(fmt::format("--no-pager show {}", shell_quote(unit)), user);
  auto [status, lines] = probe_deadline ? probe(command, *probe_deadline) : execute(command);
  if (status != 0)
    throw RequestedAssertionFailed(fmt::format("retrieving systemctl info for unit \"{}\" {}failed with exit code {}", unit,
                            user ? fmt::format("under user \"{}\" ", *user) : "", status));
  return parse_systemctl_show(lines);
}

static const std::string& property_of(const std::map<std::string, std::string>& info, const std::string& unit,
                                      const std::string& property) {
  auto it = info.find(property);
  if (it == info.end())
    throw Error(fmt::format("systemctl show for unit \"{}\" has no property {} (is systemd running in the guest?)", unit,
                            property));
  return it->second;
}

std::string BaseMachine::get_unit_property(const std::string& unit, const std::string& property,
                                       const std::optional<std::string>& user) {
  auto [status, lines] =
      systemctl(fmt::format("--no-pager show --property={} {}", shell_quote(property), shell_quote(unit)), user);
  if (status != 0)
    throw RequestedAssertionFailed(fmt::format("retrieving systemctl property \"{}\" for unit \"{}\" {}failed with exit code {}", property,
                            unit, user ? fmt::format("under user \"{}\" ", *user) : "", status));
  return property_of(parse_systemctl_show(lines), unit, property);
}

std::string BaseMachine::probe_active_state(const std::string& unit, const std::optional<std::string>& user,
                                       Deadline deadline) {
  // A login shell may print more than systemctl: parse all of it.
  if (user) return property_of(unit_info(unit, user, deadline), unit, "ActiveState");
  // The answer is the exit status and the output is empty, so the guest
  // starts no base64 process: a third of the probe's cost under TCG.
  auto [status, out] = probe(
      fmt::format("state=$(systemctl --no-pager show --property=ActiveState --value {}) || exit $((100 + $?)); "
                  "case $state in active) exit 0;; failed) exit 10;; inactive) exit 11;; *) exit 12;; esac",
                  shell_quote(unit)),
      deadline);
  switch (status) {
    case 0:
      return "active";
    case 10:
      return "failed";
    case 11:
      return "inactive";
    case 12:
      return "(changing)";
    default:
      throw Error(fmt::format("retrieving systemctl info for unit \"{}\" failed with exit code {}", unit,
                              status >= 100 ? status - 100 : status));
  }
}

void BaseMachine::wait_for_unit(const std::string& unit, const std::optional<std::string>& user, Duration timeout) {
  auto nest = nested(fmt::format("waiting for unit {}{}", unit, user ? " with user " + *user : ""));
  auto start = Clock::now();
  auto wait_deadline = Deadline::after(timeout);
  auto deadline = host_deadline(wait_deadline);
  // A system unit: one guest command that sleeps on systemd's signals. A
  // user's units (through su) and guests without busctl poll per try.
  if (!user && unit_events_usable_) {
    std::string what = fmt::format("wait for unit {}", unit);
    auto [status, out] = run_guest_loop(
        [&](Duration given) { return guest_unit_wait_command(shell_quote(unit), given); }, what, start,
        wait_deadline, timeout);
    if (status == 0) return;
    if (status == kUnitWaitFailed)
      throw RequestedAssertionFailed(fmt::format("unit \"{}\" reached state \"failed\"", unit));
    if (status == kUnitWaitInactive)
      throw RequestedAssertionFailed(fmt::format("unit \"{}\" is inactive and there are no pending jobs", unit));
    if (status != kUnitWaitUnusable) throw_ended_early(what, status, out);
    unit_events_usable_ = false;
  }
  retry_until(
      [&](bool) {
        std::string state = probe_active_state(unit, user, deadline);
        if (state == "failed") throw RequestedAssertionFailed(fmt::format("unit \"{}\" reached state \"{}\"", unit, state));
        if (state == "inactive") {
          auto [status, jobs] = probe(systemctl_command("list-jobs --full 2>&1", user), deadline);
          if (jobs.find("No jobs") != std::string::npos &&
              probe_active_state(unit, user, deadline) == state)
            throw RequestedAssertionFailed(fmt::format("unit \"{}\" is inactive and there are no pending jobs", unit));
        }
        return state == "active";
      },
      wait_deadline, timeout);
}

void BaseMachine::wait_for_unit_active_state(const std::string& unit, const std::string& state,
                                             const std::optional<std::string>& user, Duration timeout) {
  // systemd's ActiveState values (systemctl --state=help): a typo would
  // otherwise wait for the whole timeout.
  static const char* const kStates[] = {"active",       "reloading",   "inactive",   "failed",
                                        "activating",   "deactivating", "maintenance", "refreshing"};
  if (std::find(std::begin(kStates), std::end(kStates), state) == std::end(kStates))
    throw Error(fmt::format("\"{}\" is not a unit state (use active, reloading, inactive, failed, activating, "
                            "deactivating, maintenance or refreshing)",
                            state));
  auto nest = nested(fmt::format("waiting for unit {} to be {}{}", unit, state, user ? " with user " + *user : ""));
  auto wait_deadline = Deadline::after(timeout);
  auto deadline = host_deadline(wait_deadline);
  std::string seen;
  retry_until(
      [&](bool last_try) {
        seen = property_of(unit_info(unit, user, deadline), unit, "ActiveState");
        if (last_try && seen != state) log(fmt::format("unit {} is still {}", unit, seen));
        return seen == state;
      },
      wait_deadline, timeout);
}

void BaseMachine::require_unit_state(const std::string& unit, const std::string& require_state) {
  auto nest = nested(fmt::format("checking if unit ‘{}’ has reached state '{}'", unit, require_state));
  std::string state = property_of(get_unit_info(unit), unit, "ActiveState");
  if (state != require_state)
    throw RequestedAssertionFailed(
        fmt::format("Expected unit ‘{}’ to to be in state '{}' but it is in state ‘{}’", unit, require_state, state));
}

std::pair<int, std::string> BaseMachine::start_job(const std::string& job, const std::optional<std::string>& user) {
  return systemctl("start " + shell_quote(job), user);
}

std::pair<int, std::string> BaseMachine::stop_job(const std::string& job, const std::optional<std::string>& user) {
  return systemctl("stop " + shell_quote(job), user);
}

void BaseMachine::wait_for_job(const std::string& job) { wait_for_unit(job); }

}  // namespace td
