// A machine under test: one QEMU process and the three channels the driver
// has to it. The human monitor (a Unix socket QEMU connects to), the root
// shell of the guest's backdoor on a virtio console (another Unix socket),
// and the serial console (QEMU's stdout), read line by line into the log.
//
// Lifecycle, explicit as in QEMU's own qemu.machine: start() launches QEMU
// and accepts its sockets, connect() waits for the backdoor shell,
// shutdown()/crash()/wait_for_shutdown() end it, release() kills it. Every
// wait has a deadline, sees QEMU exiting, and can be interrupted.
#pragma once

#include <condition_variable>
#include <deque>
#include <filesystem>
#include <map>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "test_driver/json.h"
#include "test_driver/logger.h"
#include "test_driver/process.h"
#include "test_driver/start_command.h"

namespace td {

class ShellReply;

class Machine {
 public:
  using Clock = std::chrono::steady_clock;
  using Callback = std::function<void()>;
  // A regular expression test; the bindings make it from Python's re so
  // that scripts keep Python's regex dialect.
  using TextMatcher = std::function<bool(const std::string&)>;

  struct Options {
    std::filesystem::path out_dir;
    std::filesystem::path tmp_dir;
    std::shared_ptr<StartCommand> start_command;
    std::string name = "machine";
    bool keep_vm_state = false;
    bool allow_reboot = false;
    std::vector<Callback> callbacks;
  };

  // Creates the shared and state directories (mode 0700); wipes an old
  // state directory unless keep_vm_state.
  explicit Machine(Options options);
  // Kills QEMU if it still runs.
  ~Machine();
  Machine(const Machine&) = delete;
  Machine& operator=(const Machine&) = delete;

  // --- lifecycle
  void start(std::optional<bool> allow_reboot = std::nullopt);
  void connect();
  bool is_up() const { return booted_ && connected_; }
  // "poweroff" in the guest, then wait_for_shutdown().
  void shutdown();
  // "quit" on the monitor, then wait_for_shutdown().
  void crash();
  // Waits until QEMU has exited (no deadline when timeout is nullopt).
  void wait_for_shutdown(std::optional<double> timeout = std::nullopt);
  // Kills QEMU (SIGTERM, then SIGKILL) and closes its channels.
  void release();
  void cleanup_statedir();

  // --- the shell
  // Runs `command` in the guest's root shell; returns (status, output).
  // With check_return false the status is -1 and one round trip is saved.
  // `timeout` (seconds) wraps the command in coreutils' timeout.
  // With check_output false the output is discarded and the status is -2.
  std::pair<int, std::string> execute(const std::string& command, bool check_return = true,
                                      std::optional<double> timeout = 900, bool check_output = true);
  std::string succeed(const std::vector<std::string>& commands, std::optional<double> timeout = std::nullopt);
  std::string fail(const std::vector<std::string>& commands, std::optional<double> timeout = std::nullopt);
  std::string wait_until_succeeds(const std::string& command, double timeout = 900);
  std::string wait_until_fails(const std::string& command, double timeout = 900);

  // --- the monitor
  std::string wait_for_monitor_prompt();
  std::string send_monitor_command(const std::string& command);

  // --- QMP, the QEMU Machine Protocol (<state_dir>/qmp)
  // Sends a command; returns its "return" value. Throws td::QmpError for an
  // error reply, td::MachineError when QEMU is gone.
  Json qmp_command(const std::string& command, const Json& arguments = Json());
  // Returns the first QMP event since the machine started, not consumed by
  // an earlier call, that `filter` accepts (waiting for it if need be); the
  // events before it are consumed too.
  Json wait_for_qmp_event(const std::function<bool(const Json&)>& filter, double timeout = 600);

  // --- the serial console
  // All serial lines seen since the last start, joined with newlines.
  std::string console_log() const;
  // Waits until `matches` holds for the serial lines not yet consumed by an
  // earlier call (joined with newlines), then consumes them. Event-driven:
  // wakes on each new line. No deadline when timeout is nullopt.
  void wait_for_console_text(const std::string& regex_text, const TextMatcher& matches,
                             std::optional<double> timeout = std::nullopt);
  // Writes `chars` to QEMU's stdin, i.e. the guest's serial console.
  void send_console(const std::string& chars);
  // Forwards the driver's stdin to the serial console until end of input
  // (Ctrl-D) or an interrupt (Ctrl-C); for interactive use.
  void console_interact();

  // --- systemd (machine_systemd.cc)
  std::pair<int, std::string> systemctl(const std::string& q, const std::optional<std::string>& user = std::nullopt);
  std::map<std::string, std::string> get_unit_info(const std::string& unit,
                                                   const std::optional<std::string>& user = std::nullopt);
  std::string get_unit_property(const std::string& unit, const std::string& property,
                                const std::optional<std::string>& user = std::nullopt);
  void wait_for_unit(const std::string& unit, const std::optional<std::string>& user = std::nullopt,
                     double timeout = 900);
  void require_unit_state(const std::string& unit, const std::string& require_state = "active");
  std::pair<int, std::string> start_job(const std::string& job, const std::optional<std::string>& user = std::nullopt);
  std::pair<int, std::string> stop_job(const std::string& job, const std::optional<std::string>& user = std::nullopt);
  void wait_for_job(const std::string& job);

  // --- files (machine_files.cc)
  void wait_for_file(const std::string& filename, double timeout = 900);
  void copy_from_host_via_shell(const std::filesystem::path& source, const std::string& target);
  void copy_from_host(const std::filesystem::path& source, const std::string& target);
  // Copies a guest path to out_dir/target_dir/<basename> through the shared
  // directory.
  void copy_from_vm(const std::string& source, const std::string& target_dir = "");

  // --- network (machine_network.cc)
  void wait_for_open_port(int port, const std::string& addr = "localhost", double timeout = 900);
  void wait_for_closed_port(int port, const std::string& addr = "localhost", double timeout = 900);
  void wait_for_open_unix_socket(const std::string& path, bool is_datagram = false, double timeout = 900);
  void forward_port(int host_port = 8080, int guest_port = 80);
  void block();
  void unblock();

  // --- keyboard, TTYs, X11 (machine_input.cc)
  void send_key(const std::string& key, double delay = 0.01, bool log = true);
  void send_chars(const std::string& chars, double delay = 0.01);
  std::string get_tty_text(const std::string& tty);
  void wait_until_tty_matches(const std::string& tty, const std::string& regex_text, const TextMatcher& matches,
                              double timeout = 900);
  void dump_tty_contents(const std::string& tty);
  // Sleeps in guest time.
  void sleep(double seconds);
  void wait_for_x(double timeout = 900);
  std::vector<std::string> get_window_names();
  void wait_for_window(const std::string& regex_text, const TextMatcher& matches, double timeout = 900);
  // Connects the terminal to the guest's root shell through socat.
  void shell_interact();
  // Presses Ctrl+Alt+Delete; the shell must be reconnected afterwards.
  void reboot();

  // --- screen (machine_screen.cc)
  // Saves a PNG: out_dir/<name>.png for a bare word, else the given path.
  void screenshot(const std::string& filename);
  std::vector<std::string> get_screen_text_variants();
  std::string get_screen_text();
  void wait_for_text(const std::string& regex_text, const TextMatcher& matches, double timeout = 900);

  // --- logging
  void log(const std::string& message);
  void log_serial(const std::string& message);
  std::unique_ptr<Logger::Nest> nested(const std::string& message, const LogAttributes& attributes = {});

  void run_callbacks();

  // --- attributes
  const std::string& name() const { return options_.name; }
  const std::filesystem::path& out_dir() const { return options_.out_dir; }
  const std::filesystem::path& tmp_dir() const { return options_.tmp_dir; }
  const std::filesystem::path& shared_dir() const { return shared_dir_; }
  const std::filesystem::path& state_dir() const { return state_dir_; }
  const std::filesystem::path& monitor_path() const { return monitor_path_; }
  const std::filesystem::path& shell_path() const { return shell_path_; }
  const std::filesystem::path& qmp_path() const { return qmp_path_; }
  const std::shared_ptr<StartCommand>& start_command() const { return options_.start_command; }
  bool keep_vm_state() const { return options_.keep_vm_state; }
  bool allow_reboot() const { return options_.allow_reboot; }
  void set_allow_reboot(bool on) { options_.allow_reboot = on; }
  bool booted() const { return booted_; }
  bool connected() const { return connected_; }
  std::optional<pid_t> pid() const { return pid_; }
  std::vector<Callback>& callbacks() { return options_.callbacks; }

  // How long connect() waits for the backdoor shell (seconds); default 900,
  // or $TEST_DRIVER_CONNECT_TIMEOUT.
  void set_connect_timeout(double seconds) { connect_timeout_ = seconds; }

 private:
  struct Channels;
  class SerialReader;

  [[noreturn]] void fail_channel(const std::string& step, const std::string& reason);
  void accept_channels();
  // execute(), with `input` written to the command's stdin (it must read
  // exactly that many bytes, e.g. with `head -c`).
  // With probe_until and no timeout, the host bounds the command instead of
  // a guest-side `timeout` process.
  std::pair<int, std::string> run_command(const std::string& command, bool check_return,
                                          std::optional<double> timeout, bool check_output, std::string_view input,
                                          std::optional<Clock::time_point> probe_until = std::nullopt);
  // A command the driver runs to test a wait's condition (test -e, nc -z,
  // systemctl show). It has no guest-side `timeout` process, which would
  // cost more than the test itself under TCG; `deadline` bounds it instead.
  std::pair<int, std::string> probe(const std::string& command, Clock::time_point deadline);
  // When the host stops waiting for what the guest bounds to `seconds` (a
  // command's timeout, a wait's probes): then, plus a margin.
  static Clock::time_point host_deadline(double seconds);
  // get_unit_info, run as a probe when probe_deadline is given.
  std::map<std::string, std::string> unit_info(const std::string& unit, const std::optional<std::string>& user,
                                               std::optional<Clock::time_point> probe_deadline);
  // A unit's ActiveState for wait_for_unit: "active", "failed", "inactive",
  // or "(changing)" for any other.
  std::string probe_active_state(const std::string& unit, const std::optional<std::string>& user,
                                 Clock::time_point deadline);
  // The probe of wait_for_open/closed_port.
  bool port_is_open(int port, const std::string& addr, Clock::time_point deadline);
  // Reads and drops the reply of a command the host stopped waiting for.
  void finish_stale_command();
  void connect_qmp();
  // Reads until a QMP reply arrives; with expect_exit, QEMU closing the
  // connection (as after "quit") is an answer too.
  Json read_qmp_reply(const std::string& step, bool expect_exit);
  // Reads the reply to a command into `reply`; false when the deadline passed.
  bool read_shell_reply(ShellReply& reply, std::optional<Clock::time_point> deadline, const std::string& step);
  std::string read_monitor_reply(bool expect_exit);
  void write_shell(const std::string& data, const std::string& step);
  void finish_shutdown();
  std::string recent_output() const;
  std::vector<std::string> screen_text_variants(const std::vector<int>& models);
  void screendump(const std::filesystem::path& ppm);
  size_t console_cursor_ = 0;  // serial lines consumed by wait_for_console_text
  // A command whose reply the host stopped waiting for (Ctrl-C, or a probe
  // past its deadline); read and dropped before the next command so replies
  // never get mixed up.
  struct StaleCommand {
    std::string command;
    std::optional<Clock::time_point> deadline;
  };
  std::optional<StaleCommand> stale_command_;
  // Whether the guest's bash opens /dev/tcp/HOST/PORT itself (asked once).
  std::optional<bool> bash_has_dev_tcp_;

  Options options_;
  std::filesystem::path shared_dir_;
  std::filesystem::path state_dir_;
  std::filesystem::path monitor_path_;
  std::filesystem::path shell_path_;
  std::filesystem::path qmp_path_;
  double connect_timeout_ = 900;

  std::recursive_mutex mutex_;  // one operation on the channels at a time
  std::unique_ptr<Process> process_;
  std::unique_ptr<Channels> channels_;
  std::unique_ptr<SerialReader> serial_;
  bool booted_ = false;
  bool connected_ = false;
  std::optional<pid_t> pid_;
};

}  // namespace td
