// What every machine under test can do through a root shell inside it,
// whatever runs it (a QEMU guest, a container): commands and their waits,
// systemd units, files, ports, its console's lines, logging. Written once
// against a ShellSession and a SerialReader; a kind of machine (machine.h:
// QEMU, nspawn_machine.h: systemd-nspawn) adds its lifecycle, the session,
// the console and what only it has (monitor, screen, keyboard).
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "test_driver/channel_owner.h"
#include "test_driver/deadline.h"
#include "test_driver/duration.h"
#include "test_driver/logger.h"
#include "test_driver/text_pattern.h"

namespace td {

class SerialReader;
class ShellSession;

class BaseMachine : public ChannelOwner {
 public:
  using Callback = std::function<void()>;

  // Where a machine lives and what runs before each of its commands.
  struct Setup {
    std::string name;
    std::filesystem::path out_dir;     // where copies and screenshots go
    std::filesystem::path tmp_dir;     // the driver's temporary directory
    std::filesystem::path shared_dir;  // the host side of the guest's /tmp/shared
    std::filesystem::path state_dir;   // the machine's own state
    std::vector<Callback> callbacks;
  };

  explicit BaseMachine(Setup setup) : setup_(std::move(setup)) {}
  ~BaseMachine() override = default;
  BaseMachine(const BaseMachine&) = delete;
  BaseMachine& operator=(const BaseMachine&) = delete;

  // --- lifecycle, kind by kind
  virtual void start() = 0;
  // Starts if need be and waits for the root shell.
  virtual void connect() = 0;
  // Powers the machine off from inside and waits until it is gone.
  virtual void shutdown() = 0;
  // Ends it at once, as a crash would.
  virtual void crash() = 0;
  // Waits until the machine has stopped (no deadline when nullopt).
  virtual void wait_for_shutdown(std::optional<Duration> timeout = std::nullopt) = 0;
  // Kills what still runs and closes the channels.
  virtual void release() = 0;
  virtual bool booted() const = 0;
  virtual bool connected() const = 0;
  // Forgets the shell connection: the next command waits for a new one
  // (after a reboot the script triggered itself).
  virtual void set_connected(bool connected) = 0;
  bool is_up() const { return booted() && connected(); }

  // --- commands (base_machine.cc)
  // Runs `command` in the root shell; returns (status, output). With
  // check_return false the status is -1 and one round trip is saved; with
  // check_output false the output is discarded and the status is -2.
  // `timeout` kills the command in the guest (coreutils' timeout).
  std::pair<int, std::string> execute(const std::string& command, bool check_return = true,
                                      std::optional<Duration> timeout = kDefaultTimeout, bool check_output = true);
  std::string succeed(const std::vector<std::string>& commands, std::optional<Duration> timeout = std::nullopt);
  std::string fail(const std::vector<std::string>& commands, std::optional<Duration> timeout = std::nullopt);
  // `timeout` bounds the whole wait, its last try included; each try is
  // killed in the guest when the wait's time is up, or after
  // `attempt_timeout` if that comes first.
  std::string wait_until_succeeds(const std::string& command, Duration timeout = kDefaultTimeout,
                                  std::optional<Duration> attempt_timeout = std::nullopt);
  std::string wait_until_fails(const std::string& command, Duration timeout = kDefaultTimeout,
                               std::optional<Duration> attempt_timeout = std::nullopt);
  // Sleeps in the machine's time.
  void sleep(double seconds);

  // --- systemd (base_machine_systemd.cc)
  std::pair<int, std::string> systemctl(const std::string& q, const std::optional<std::string>& user = std::nullopt);
  std::map<std::string, std::string> get_unit_info(const std::string& unit,
                                                   const std::optional<std::string>& user = std::nullopt);
  std::string get_unit_property(const std::string& unit, const std::string& property,
                                const std::optional<std::string>& user = std::nullopt);
  void wait_for_unit(const std::string& unit, const std::optional<std::string>& user = std::nullopt,
                     Duration timeout = kDefaultTimeout);
  // Waits until the unit's ActiveState is `state` (any of systemd's, failed
  // included: unlike wait_for_unit, no state ends the wait early).
  void wait_for_unit_active_state(const std::string& unit, const std::string& state,
                                  const std::optional<std::string>& user = std::nullopt,
                                  Duration timeout = kDefaultTimeout);
  void require_unit_state(const std::string& unit, const std::string& require_state = "active");
  std::pair<int, std::string> start_job(const std::string& job, const std::optional<std::string>& user = std::nullopt);
  std::pair<int, std::string> stop_job(const std::string& job, const std::optional<std::string>& user = std::nullopt);
  void wait_for_job(const std::string& job);

  // --- files (base_machine_files.cc)
  void wait_for_file(const std::string& filename, Duration timeout = kDefaultTimeout);
  void copy_from_host_via_shell(const std::filesystem::path& source, const std::string& target);
  // Through the shared directory (host shared_dir = guest /tmp/shared).
  void copy_from_host(const std::filesystem::path& source, const std::string& target);
  // Copies a guest path to out_dir/target_dir/<basename> through the shared
  // directory.
  void copy_from_vm(const std::string& source, const std::string& target_dir = "");

  // --- ports (base_machine_ports.cc)
  void wait_for_open_port(int port, const std::string& addr = "localhost", Duration timeout = kDefaultTimeout);
  void wait_for_closed_port(int port, const std::string& addr = "localhost", Duration timeout = kDefaultTimeout);
  void wait_for_open_unix_socket(const std::string& path, bool is_datagram = false, Duration timeout = kDefaultTimeout);

  // --- virtual terminals and X11 in the guest (base_machine_tty.cc)
  std::string get_tty_text(const std::string& tty);
  void wait_until_tty_matches(const std::string& tty, const TextPattern& pattern, Duration timeout = kDefaultTimeout);
  void dump_tty_contents(const std::string& tty);
  void wait_for_x(Duration timeout = kDefaultTimeout);
  std::vector<std::string> get_window_names();
  void wait_for_window(const TextPattern& pattern, Duration timeout = kDefaultTimeout);

  // --- the console (base_machine_console.cc): a VM's serial console, a
  // container's /dev/console
  // All console lines seen since the last start, joined with newlines.
  std::string console_log() const;
  // Waits until `matches` holds for the console lines not yet consumed by an
  // earlier call (joined with newlines), then consumes them. Event-driven:
  // wakes on each new line. No deadline when timeout is nullopt.
  void wait_for_console_text(const TextPattern& pattern, std::optional<Duration> timeout = std::nullopt);

  // --- logging
  void log(const std::string& message) override;
  void log_serial(const std::string& message);
  std::unique_ptr<Logger::Nest> nested(const std::string& message, const LogAttributes& attributes = {});
  void run_callbacks();

  // --- attributes
  const std::string& name() const { return setup_.name; }
  const std::filesystem::path& out_dir() const { return setup_.out_dir; }
  const std::filesystem::path& tmp_dir() const { return setup_.tmp_dir; }
  const std::filesystem::path& shared_dir() const { return setup_.shared_dir; }
  const std::filesystem::path& state_dir() const { return setup_.state_dir; }
  std::vector<Callback>& callbacks() { return setup_.callbacks; }

 protected:
  // How the driver runs a command (what execute()'s flags become).
  struct CommandOptions {
    bool check_return = true;
    std::optional<Duration> timeout = std::nullopt;  // killed in the guest after this; nullopt: not killed
    bool check_output = true;
    std::string_view input = {};  // follows the command line; the command must read exactly this
    // A probe of the driver's own: no guest-side timeout process, the
    // driver stops waiting at this deadline instead.
    std::optional<Deadline> probe_until = std::nullopt;
    // Written to the shell when the driver stops waiting (see ShellCommand).
    std::string_view abandon_line = {};
  };
  std::pair<int, std::string> run_command(const std::string& command, const CommandOptions& options);
  // A command the driver runs to test a wait's condition (test -e, systemctl
  // show). It has no guest-side `timeout` process, which would cost more
  // than the test itself under TCG; `deadline` bounds it instead.
  std::pair<int, std::string> probe(const std::string& command, Deadline deadline) {
    return run_command(command, {.probe_until = deadline});
  }
  // A wait for `condition` (bash, quoted already) polled in the guest (see
  // guest_poll.h) until `deadline`, made from `timeout` when the wait began
  // at `start`; throws retry()'s timeout error when it passes first.
  void poll_in_guest(const std::string& condition, Clock::time_point start, Deadline deadline, Duration timeout);
  // Runs a guest-side loop (guest_poll.h) made by command_for(time left)
  // until it ends other than by its own deadline, which it is sent again
  // for; returns that status and output. Throws the wait's timeout error
  // once the deadline passed, and names `what` when the loop ended early.
  std::pair<int, std::string> run_guest_loop(const std::function<std::string(Duration)>& command_for,
                                             std::string_view what, Clock::time_point start, Deadline deadline,
                                             Duration timeout);
  [[noreturn]] void throw_ended_early(std::string_view what, int status, const std::string& out) const;
  // When the driver stops waiting for what the guest bounds by `deadline`
  // (a command's timeout, a wait's probes): then, plus a margin.
  static Deadline host_deadline(Deadline guest_deadline);
  // The connected session of the running machine, after connect().
  virtual ShellSession& session() = 0;
  // A new shell (a boot): what was learnt about the old one is forgotten.
  void forget_shell_facts() {
    bash_has_dev_tcp_.reset();
    unit_events_usable_ = true;
  }
  // The reader of the running machine's console, or nullptr.
  virtual SerialReader* console() const = 0;
  // A new boot: wait_for_console_text starts from its first line.
  void reset_console_cursor() { console_cursor_ = 0; }
  // "machine 'NAME'", how errors start.
  std::string label() const { return "machine '" + name() + "'"; }

  std::recursive_mutex mutex_;  // one operation on the channels at a time

 private:
  // get_unit_info, run as a probe when probe_deadline is given.
  std::map<std::string, std::string> unit_info(const std::string& unit, const std::optional<std::string>& user,
                                               std::optional<Deadline> probe_deadline);
  // A unit's ActiveState for wait_for_unit: "active", "failed", "inactive",
  // or "(changing)" for any other.
  std::string probe_active_state(const std::string& unit, const std::optional<std::string>& user, Deadline deadline);
  // The probe of wait_for_open/closed_port where the guest's bash cannot
  // poll (another host, no /dev/tcp).
  bool port_is_open(int port, const std::string& addr, Deadline deadline);
  // Whether the guest's bash opens /dev/tcp/HOST/PORT (asked once a boot).
  bool bash_has_dev_tcp(Deadline deadline);
  enum class PortState { kOpen, kClosed };
  void wait_for_port(int port, const std::string& addr, PortState want, Duration timeout);
  enum class Want { kSuccess, kFailure };
  std::string wait_until(Want want, const std::string& command, Duration timeout,
                         std::optional<Duration> attempt_timeout);

  Setup setup_;
  // Whether the guest's bash opens /dev/tcp/HOST/PORT itself (asked once).
  std::optional<bool> bash_has_dev_tcp_;
  bool unit_events_usable_ = true;  // busctl monitor works in this guest (wait_for_unit)
  size_t console_cursor_ = 0;  // console lines consumed by wait_for_console_text
};

}  // namespace td
