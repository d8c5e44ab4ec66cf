// A machine that QEMU runs: the QEMU process and the driver's channels to
// it. The human monitor and the backdoor's root shell on a virtio console
// are Unix sockets QEMU connects to, QMP one it listens on, and the serial
// console is QEMU's stdout. What works through the shell alone comes from
// BaseMachine; this adds the lifecycle, monitor, QMP, screen, keyboard and
// serial console.
//
// Lifecycle, explicit as in QEMU's own qemu.machine: start() launches QEMU
// and accepts its sockets, connect() waits for the backdoor shell,
// shutdown()/crash()/wait_for_shutdown() end it, release() kills it. Every
// wait has a deadline, sees QEMU exiting, and can be interrupted. When a
// channel fails, the error says whether QEMU exited and what it printed last.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "test_driver/base_machine.h"
#include "test_driver/boot_cache.h"
#include "test_driver/image.h"
#include "test_driver/json.h"
#include "test_driver/process.h"
#include "test_driver/start_command.h"

namespace td {

class QmpClient;
class ScreenRecorder;
class SerialReader;

class Machine : public BaseMachine {
 public:
  // How long wait_for_qmp_event waits by default (the reference's QMP wait).
  static constexpr Duration kQmpEventTimeout{600.0};

  struct Options {
    std::filesystem::path out_dir;
    std::filesystem::path tmp_dir;
    std::shared_ptr<StartCommand> start_command;
    std::string name = "machine";
    bool keep_vm_state = false;
    bool allow_reboot = false;
    std::vector<Callback> callbacks;
    // The boot cache's directory (see boot_cache.h); empty: none, unless
    // $TEST_DRIVER_BOOT_CACHE names one.
    std::filesystem::path boot_cache;
    // Record the screen to out_dir/<name>.webm (screen_recorder.h); false:
    // not unless $TEST_DRIVER_VIDEO is 1 (--video).
    bool video = false;
  };

  // Creates the shared and state directories (mode 0700) and locks the
  // state directory for the machine's life (throws td::Error naming the
  // other driver's pid when one holds it); wipes an old state directory
  // unless keep_vm_state.
  explicit Machine(Options options);
  // Kills QEMU if it still runs; finishes the video.
  ~Machine() override;

  // --- lifecycle
  void start() override { start(std::nullopt); }
  void start(std::optional<bool> allow_reboot);
  void connect() override;
  // From the initrd's backdoor shell (NixOS: testing.initrdBackdoor with a
  // systemd initrd) to stage 2's: waits for initrd.target, isolates
  // initrd-switch-root.target without waiting for an answer, and connects to
  // the shell the backdoor starts in the new root.
  void switch_root();
  // "poweroff" in the guest, then wait_for_shutdown().
  void shutdown() override;
  // "quit" on QMP (else the monitor), then wait_for_shutdown().
  void crash() override;
  void wait_for_shutdown(std::optional<Duration> timeout = std::nullopt) override;
  // Kills QEMU (SIGTERM, then SIGKILL) and what it left in its process
  // group, closes its channels and deletes the snapshots saved in this run
  // (unless keep_vm_state); the boot cache keeps its own. Finishes the
  // video (--video): ffmpeg gets the end of its frames and is waited for.
  void release() override;
  bool booted() const override { return booted_; }
  bool connected() const override { return connected_; }
  // false: the next command waits for the backdoor's new shell (a reboot the
  // script triggered); true: only on a machine that runs.
  void set_connected(bool connected) override;
  void cleanup_statedir();

  // --- snapshots (machine_snapshot.cc, snapshot.h)
  // Saves the running guest's state as `name` (replacing one of that name)
  // under <state_dir>/snapshots: releases the driver's 9p shares in the
  // guest, stops it, streams its state out through QMP, resumes it, mounts
  // the shares again and sets its clock. Boots and connects first if need
  // be. Throws td::Error naming the mount when the guest has a 9p share the
  // driver does not own (QEMU cannot migrate it), and for writable disks.
  void save_snapshot(const std::string& name);
  // Reverts the machine to the state saved as `name`: a new QEMU loads it
  // (the old one is killed), the shell, monitor, QMP and serial console are
  // connected again, the guest's clock is set from the host's, and its
  // randomness is reseeded (vmgenid: the guest sees a new generation ID).
  void restore_snapshot(const std::string& name);
  // The names of the snapshots saved in this run.
  std::vector<std::string> snapshots() const;
  // The boot cache's directory, or "" when there is none.
  std::filesystem::path boot_cache_dir() const { return options_.boot_cache; }
  // How the last start() went with the boot cache: "" (no cache), "hit",
  // "miss", or "uncacheable: <why>".
  const std::string& boot_cache_outcome() const { return boot_cache_outcome_; }

  // --- the monitor
  std::string wait_for_monitor_prompt();
  std::string send_monitor_command(const std::string& command);

  // --- QMP, the QEMU Machine Protocol (<state_dir>/qmp)
  // Sends a command; returns its "return" value. Throws td::QmpError for an
  // error reply, td::MachineError when QEMU is gone.
  Json qmp_command(const std::string& command, const Json& arguments = Json());
  // Whether QMP is connected (from start() until the machine stops).
  bool qmp_connected() const;
  // Returns the first QMP event since the machine started, not consumed by
  // an earlier call, that `filter` accepts (waiting for it if need be); the
  // events before it are consumed too.
  Json wait_for_qmp_event(const std::function<bool(const Json&)>& filter, Duration timeout = kQmpEventTimeout);

  // --- the serial console (its lines: BaseMachine::console_log)
  // Writes `chars` to QEMU's stdin, i.e. the guest's serial console.
  void send_console(const std::string& chars);
  // Forwards the driver's stdin to the serial console until end of input
  // (Ctrl-D) or an interrupt (Ctrl-C); for interactive use.
  void console_interact();

  // --- network (machine_network.cc)
  void forward_port(int host_port = 8080, int guest_port = 80);
  void block();
  void unblock();

  // --- keyboard (machine_input.cc)
  // `delay`: seconds to pause after each key.
  void send_key(const std::string& key, double delay = 0.01, bool log = true);
  void send_chars(const std::string& chars, double delay = 0.01);
  // Presses Ctrl+Alt+Delete; the shell must be reconnected afterwards.
  void reboot();
  // Connects the terminal to the guest's root shell through socat.
  void shell_interact();

  // --- screen (machine_screen.cc)
  // Saves a PNG: out_dir/<name>.png for a bare word, else the given path.
  void screenshot(const std::string& filename);
  std::vector<std::string> get_screen_text_variants();
  std::string get_screen_text();
  void wait_for_text(const TextPattern& pattern, Duration timeout = kDefaultTimeout);
  // Screen matching against reference PNGs (the comparison: image.h). A
  // region is in screen pixels; a region outside the screen, or a reference
  // of another size than the region (the whole screen without one), is a
  // td::Error naming both sizes.
  // Whether the screen (or its region) matches the reference within the tolerance.
  bool screen_matches(const std::filesystem::path& reference, const std::optional<ImageRegion>& region = std::nullopt,
                      const ImageTolerance& tolerance = {});
  // Waits until screen_matches. On timeout, saves the last screen (region)
  // as out_dir/<reference's stem>.actual.png and its difference image as
  // <stem>.diff.png, and throws the timeout error of retry() saying how many
  // pixels differed at best and naming both files.
  void wait_for_screen_match(const std::filesystem::path& reference,
                             const std::optional<ImageRegion>& region = std::nullopt,
                             const ImageTolerance& tolerance = {}, Duration timeout = kDefaultTimeout);
  // Saves the screen (or its region) as a PNG, named as screenshot() names
  // its file; returns the path.
  std::filesystem::path save_screen_region(const std::string& filename,
                                           const std::optional<ImageRegion>& region = std::nullopt);

  // --- attributes
  const std::filesystem::path& monitor_path() const { return monitor_path_; }
  const std::filesystem::path& shell_path() const { return shell_path_; }
  const std::filesystem::path& qmp_path() const { return qmp_path_; }
  const std::shared_ptr<StartCommand>& start_command() const { return options_.start_command; }
  bool keep_vm_state() const { return options_.keep_vm_state; }
  bool allow_reboot() const { return options_.allow_reboot; }
  void set_allow_reboot(bool on) { options_.allow_reboot = on; }
  std::optional<pid_t> pid() const { return pid_; }

  // How long connect() waits for the backdoor shell; kDefaultTimeout, or
  // $TEST_DRIVER_CONNECT_TIMEOUT.
  void set_connect_timeout(Duration timeout) { connect_timeout_ = timeout; }
  // $TEST_DRIVER_NO_GUEST_ASLR=1: once connected (booted or restored), the
  // guest's kernel.randomize_va_space is 0, so that programs start faster
  // under TCG (an opt-in for TCG-only CI: it changes the guest).
  bool turns_off_guest_aslr() const { return turn_off_guest_aslr_; }

 private:
  enum class LinkState { kDown, kUp };
  // block()/unblock(): QMP's set_link, or the human monitor's without QMP.
  void set_first_vlan_link(LinkState state);
  struct Channels;

  // ChannelOwner: the error names QEMU's exit status and last lines.
  MachineError channel_error(const std::string& step, const std::string& reason) override;
  std::string recent_output() const override;
  ShellSession& session() override;
  SerialReader* console() const override { return serial_.get(); }

  struct SavedState;  // a snapshot: its file and the 9p mounts to restore

  // start() without the boot cache: runs the start command with `extra`
  // QEMU arguments appended and accepts QEMU's channels.
  void launch(const std::vector<std::string>& extra);
  // Kills QEMU and closes its channels without logging a release.
  void discard_qemu();
  // release() but for the snapshots.
  void release_qemu();
  // start() through the boot cache: a hit restores, a miss boots.
  void start_through_boot_cache();
  // After the first connect(): saves a missed boot into the cache.
  void save_boot_to_cache();
  // Releases the driver's 9p shares, saves, resumes; what to remount.
  std::shared_ptr<SavedState> save_state(const std::filesystem::path& file, bool compress);
  // Loads a saved state into the QEMU waiting for it and resynchronises its
  // channels; returns how long each step took, for the log.
  std::string restore_state(const SavedState& state);
  // After the guest runs again: sets its clock, remounts its 9p shares.
  void after_resume(const SavedState& state);
  std::vector<std::string> qemu_cmdline() const;
  // The running machine's QMP client; throws naming `step` when there is none.
  QmpClient& running_qmp(const std::string& step);
  // Deletes this run's snapshot files (release(): at cleanup).
  void remove_snapshots();
  void listen_for_channels(Channels& channels);
  void accept_channels();
  void connect_qmp();
  void finish_shutdown();
  void press_key(const std::string& name, double delay);
  void screendump(const std::filesystem::path& ppm);
  // The screen (or its region) as an image, through a screendump.
  Image screen_image(const std::optional<ImageRegion>& region);
  // screenshot()'s rule: a name without "." gets ".png", one without "/"
  // goes to out_dir.
  std::filesystem::path screenshot_path(const std::string& filename) const;
  Channels& running_channels(const char* what);

  Options options_;
  std::filesystem::path monitor_path_;
  std::filesystem::path shell_path_;
  std::filesystem::path qmp_path_;
  Duration connect_timeout_ = kDefaultTimeout;
  bool turn_off_guest_aslr_ = false;
  // What the run asks of every connected guest ($TEST_DRIVER_NO_GUEST_ASLR).
  void apply_guest_settings();

  std::unique_ptr<Process> process_;
  std::unique_ptr<Channels> channels_;
  std::unique_ptr<SerialReader> serial_;
  bool booted_ = false;
  bool connected_ = false;
  std::optional<pid_t> pid_;
  std::shared_ptr<void> state_lock_;  // flock(2) on <state_dir>/.driver-lock
  pid_t creator_ = ::getpid();      // the driver's process, not a fork of it
  pid_t qemu_pid_ = -1;               // QEMU itself (the monitor's peer), under its start script
  std::map<std::string, std::shared_ptr<SavedState>> snapshots_;
  bool first_start_ = true;
  std::string boot_cache_outcome_;
  std::unique_ptr<BootCache> boot_cache_;
  std::optional<BootCache::Key> pending_cache_key_;  // a missed boot, saved on connect
  std::unique_ptr<ScreenRecorder> recorder_;  // with --video: from the first start until release()
};

}  // namespace td
