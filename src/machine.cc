// Machine: QEMU's lifecycle and its channels (monitor, QMP, shell, serial).
#include "test_driver/machine.h"

#include <fmt/format.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/local/stream_protocol.hpp>
#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sys/socket.h>

#include "test_driver/errors.h"
#include "test_driver/event_loop.h"
#include "test_driver/interrupt.h"
#include "test_driver/monitor_client.h"
#include "test_driver/qmp_client.h"
#include "test_driver/screen_recorder.h"
#include "test_driver/serial_reader.h"
#include "test_driver/shell_session.h"
#include "test_driver/state_dir_lock.h"

namespace asio = boost::asio;
using asio::local::stream_protocol;

namespace td {
namespace {

// How long QEMU may take to connect to the monitor and shell sockets.
constexpr Duration kSocketConnectTimeout{120.0};
// The longest line QEMU's human monitor takes (READLINE_CMD_BUF_SIZE - 1).
constexpr size_t kMonitorLineLimit = 4095;
// How many of QEMU's last output lines an error shows.
constexpr size_t kRecentLines = 20;


void check_socket_path(const std::filesystem::path& path) {
  constexpr size_t limit = sizeof(sockaddr_un::sun_path) - 1;
  if (path.string().size() > limit)
    throw Error(fmt::format("the socket path {} is {} bytes long, more than the {} bytes a Unix socket path may have; "
                            "set TMPDIR to a shorter directory",
                            path.string(), path.string().size(), limit));
}

BaseMachine::Setup setup_of(Machine::Options& options) {
  if (!options.start_command) throw Error(fmt::format("machine '{}' has no start command", options.name));
  BaseMachine::Setup setup;
  setup.name = options.name;
  setup.out_dir = options.out_dir;
  setup.tmp_dir = options.tmp_dir;
  setup.shared_dir = options.tmp_dir / "shared-xchg";
  setup.state_dir = options.tmp_dir / ("vm-state-" + options.name);
  setup.callbacks = std::move(options.callbacks);
  return setup;
}

// The process at the other end of a Unix socket (SO_PEERCRED).
std::optional<pid_t> peer_pid(int fd) {
  ucred cred{};
  socklen_t size = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &size) != 0 || cred.pid <= 0) return std::nullopt;
  return cred.pid;
}

// QEMU's vmgenid device, so that a guest restored from a snapshot learns it
// was (a new generation ID) and reseeds its random number generator; not
// when the start command or $QEMU_OPTS already has one (QEMU takes one).
void add_vmgenid(std::vector<std::string>& argv, const StartCommand& command) {
  for (const auto& arg : argv)
    if (arg.find("vmgenid") != std::string::npos) return;
  for (const auto& word : command.base_argv()) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(word, ec) || std::filesystem::file_size(word, ec) > (4u << 20)) continue;
    std::ifstream in(word, std::ios::binary);
    std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (content.find("vmgenid") != std::string::npos) return;
  }
  argv.insert(argv.end(), {"-device", "vmgenid,guid=auto"});
}

}  // namespace

// The channels of one running QEMU, all on one event loop.
struct Machine::Channels {
  EventLoop loop;
  stream_protocol::acceptor monitor_acceptor{loop.io()};
  stream_protocol::acceptor shell_acceptor{loop.io()};
  MonitorClient monitor;
  ShellSession shell;
  QmpClient qmp;

  Channels(ChannelOwner& owner, const std::string& label)
      : monitor(loop, owner), shell(loop, owner, label), qmp(loop, owner, label) {
    shell.stop_when(&qmp.panicked(), "the guest panicked (QMP event GUEST_PANICKED)");
  }
};

Machine::Machine(Options options) : BaseMachine(setup_of(options)), options_(std::move(options)) {
  monitor_path_ = state_dir() / "monitor";
  shell_path_ = state_dir() / "shell";
  qmp_path_ = state_dir() / "qmp";
  // Before any directory is made: a TMPDIR too deep for Unix sockets is
  // the run's set-up failing, not a machine failing to start.
  check_socket_path(monitor_path_);
  check_socket_path(shell_path_);
  check_socket_path(qmp_path_);
  make_private_dir(shared_dir(), "shared directory");
  std::error_code ec;
  bool existed = std::filesystem::exists(state_dir(), ec);
  make_private_dir(state_dir(), "VM state directory");
  state_lock_ = lock_state_dir(state_dir(), "VM state directory");
  if (!options_.keep_vm_state && existed) cleanup_statedir();
  if (const char* t = std::getenv("TEST_DRIVER_CONNECT_TIMEOUT")) connect_timeout_ = std::max(0.0, std::atof(t));
  if (const char* c = std::getenv("TEST_DRIVER_BOOT_CACHE"); c && *c && options_.boot_cache.empty())
    options_.boot_cache = c;
  if (const char* a = std::getenv("TEST_DRIVER_NO_GUEST_ASLR"))
    turn_off_guest_aslr_ = std::string_view(a) != "" && std::string_view(a) != "0";
  if (const char* v = std::getenv("TEST_DRIVER_VIDEO"); v && std::string_view(v) == "1") options_.video = true;
  if (options_.video) {
    ScreenRecorder::Options video;
    video.machine = name();
    video.out_dir = out_dir();
    video.state_dir = state_dir();
    recorder_ = std::make_unique<ScreenRecorder>(std::move(video));
    check_socket_path(recorder_->socket_path());
  }
}

void Machine::apply_guest_settings() {
  if (!turn_off_guest_aslr_) return;
  // A builtin's redirection: no process. After the boot cache saved the
  // boot, so that its entry is the guest as it booted.
  auto [status, out] = run_command("echo 0 > /proc/sys/kernel/randomize_va_space", {});
  if (status != 0)
    throw MachineError(fmt::format("{}: cannot turn off address-space randomisation (TEST_DRIVER_NO_GUEST_ASLR): {}",
                                   label(), out));
  log("address-space randomisation turned off in the guest (TEST_DRIVER_NO_GUEST_ASLR)");
}

Machine::~Machine() {
  try {
    release();
  } catch (...) {
  }
}

std::string Machine::recent_output() const {
  if (!serial_) return "";
  std::string out;
  for (const auto& line : serial_->recent(kRecentLines)) out += "\n    " + line;
  return out.empty() ? "" : "; last lines of QEMU's output:" + out;
}

MachineError Machine::channel_error(const std::string& step, const std::string& reason) {
  std::string why = reason;
  if (process_ && process_->wait(Clock::now() + std::chrono::seconds(1))) {
    if (serial_) serial_->drain(std::chrono::milliseconds(500));
    why = fmt::format("QEMU exited ({})", process_->describe_status());
  }
  return MachineError(fmt::format("{}: {}: {}{}", label(), step, why, recent_output()));
}

ShellSession& Machine::session() { return running_channels("the shell").shell; }

Machine::Channels& Machine::running_channels(const char* what) {
  if (!channels_) throw MachineError(fmt::format("{}: {} is not connected (start the machine first)", label(), what));
  return *channels_;
}

QmpClient& Machine::running_qmp(const std::string& step) {
  Channels& channels = running_channels("QMP");
  if (!channels.qmp.is_open())
    throw Error(fmt::format("{}: {}: snapshots need QMP, which this QEMU does not serve", label(), step));
  return channels.qmp;
}

void Machine::listen_for_channels(Channels& channels) {
  auto listen = [&](stream_protocol::acceptor& acceptor, const std::filesystem::path& path) {
    std::filesystem::remove(path);
    boost::system::error_code ec;
    acceptor.open(stream_protocol(), ec);
    if (!ec) acceptor.bind(stream_protocol::endpoint(path.string()), ec);
    if (!ec) acceptor.listen(1, ec);
    if (ec) throw Error(fmt::format("{}: cannot listen on {}: {}", label(), path.string(), ec.message()));
  };
  listen(channels.monitor_acceptor, monitor_path_);
  listen(channels.shell_acceptor, shell_path_);
}

void Machine::start(std::optional<bool> allow_reboot) {
  std::lock_guard lock(mutex_);
  if (booted_) return;
  if (allow_reboot) options_.allow_reboot = *allow_reboot;
  log("starting vm");
  rootlog().machine_event(name(), RunRecord::MachineEvent::started);
  bool first = first_start_;
  first_start_ = false;
  if (first && !options_.boot_cache.empty()) {
    start_through_boot_cache();
    return;
  }
  launch({});
}

void Machine::launch(const std::vector<std::string>& extra) {
  make_private_dir(state_dir(), "VM state directory");
  std::filesystem::remove(qmp_path_);

  Process::Options spawn;
  spawn.argv = options_.start_command->argv(monitor_path_.string(), shell_path_.string(), options_.allow_reboot,
                                            qmp_path_.string());
  add_vmgenid(spawn.argv, *options_.start_command);
  spawn.argv.insert(spawn.argv.end(), extra.begin(), extra.end());
  if (recorder_) {
    // A QMP monitor of the recorder's own: its screendumps never wait for the test's commands.
    std::filesystem::remove(recorder_->socket_path());
    auto args = ScreenRecorder::qemu_args(recorder_->socket_path());
    spawn.argv.insert(spawn.argv.end(), args.begin(), args.end());
  }
  spawn.env = StartCommand::build_environment(state_dir().string(), shared_dir().string());
  spawn.cwd = state_dir().string();
  spawn.stdin_pipe = true;  // QEMU's -serial stdio reads it: send_console

  auto channels = std::make_unique<Channels>(*this, label());
  listen_for_channels(*channels);
  try {
    process_ = Process::spawn(spawn);
  } catch (const Error& e) {
    throw Error(fmt::format("{}: cannot run the start command {}: {}", label(), options_.start_command->base_command(),
                            e.what()));
  }
  channels->loop.watch_exit_of(process_->pidfd());
  channels_ = std::move(channels);
  serial_ = std::make_unique<SerialReader>(name(), rootlog(), process_->output_fd());
  reset_console_cursor();
  forget_shell_facts();

  try {
    accept_channels();
    connect_qmp();
    // The banner; no log nest, so machines can start in parallel.
    channels_->monitor.read_reply(MonitorClient::OnClose::kFail);
  } catch (...) {
    release_qemu();
    throw;
  }
  pid_ = process_->pid();
  qemu_pid_ = peer_pid(channels_->monitor.socket().native_handle()).value_or(*pid_);
  booted_ = true;
  log(fmt::format("QEMU running (pid {})", *pid_));
  // A QEMU waiting for its state shows none of its guest's screen; the
  // recorder attaches once restore_state() has loaded it.
  bool incoming = std::find(extra.begin(), extra.end(), "-incoming") != extra.end();
  if (recorder_ && !incoming) recorder_->attach();
}

void Machine::accept_channels() {
  // TEST_DRIVER_CONNECT_TIMEOUT, the whole boot's budget, caps this too.
  Duration limit = std::min(kSocketConnectTimeout, connect_timeout_);
  auto deadline = Deadline::after(limit);
  auto accept = [&](stream_protocol::acceptor& acceptor, stream_protocol::socket& socket, const char* what) {
    bool done = false;
    boost::system::error_code ec;
    acceptor.async_accept(socket, [&](auto e) {
      ec = e;
      done = true;
    });
    std::string step = fmt::format("waiting for QEMU to connect to the {} socket", what);
    switch (channels_->loop.run(done, [&] { acceptor.cancel(); }, {.deadline = deadline, .process_exits = true})) {
      case EventLoop::Outcome::kDone:
        if (ec) fail_channel(fmt::format("accepting QEMU's {} connection", what), ec.message());
        return;
      case EventLoop::Outcome::kExited:
        fail_channel(step, "QEMU exited");
      case EventLoop::Outcome::kInterrupted:
        throw Interrupted();
      case EventLoop::Outcome::kStopped:  // not watched
      case EventLoop::Outcome::kTimedOut:
        fail_channel(step, fmt::format("no connection within {} seconds", limit.to_string()));
    }
  };
  accept(channels_->monitor_acceptor, channels_->monitor.socket(), "monitor");
  accept(channels_->shell_acceptor, channels_->shell.socket(), "shell");
  channels_->monitor_acceptor.close();
  channels_->shell_acceptor.close();
}

void Machine::connect_qmp() {
  if (auto ec = channels_->qmp.connect(qmp_path_)) {
    // A start command that drops our -qmp (or a stand-in QEMU) still works
    // through the human monitor.
    log(fmt::format("QMP is not available ({}): using the human monitor only", ec.message()));
    return;
  }
  channels_->qmp.on_event([this](const Json& event) {
    const Json* data = event.find("data");
    log(fmt::format("QMP event: {}{}", event.string_at("event"), data ? " " + data->dump() : ""));
  });
  channels_->qmp.negotiate();
}

void Machine::connect() {
  std::lock_guard lock(mutex_);
  if (connected_) return;
  auto nest = nested("waiting for the VM to finish booting");
  start();
  // A boot restored from the boot cache: the same shell answers, already
  // resynchronised; no greeting comes (waiting for one hung the first command).
  if (connected_) return;
  auto tic = Clock::now();
  channels_->shell.wait_for_greeting(connect_timeout_, [&](Duration waited) {
    log(fmt::format("still waiting for the guest's backdoor shell on {} ({:.0f} seconds so far)", shell_path_.string(),
                    waited.seconds()));
  });
  std::chrono::duration<double> took = Clock::now() - tic;
  log("connected to guest root shell");
  log(fmt::format("(connecting took {:.2f} seconds)", took.count()));
  connected_ = true;
  rootlog().machine_event(name(), RunRecord::MachineEvent::connected);
  if (pending_cache_key_) save_boot_to_cache();
  apply_guest_settings();
}

void Machine::switch_root() {
  wait_for_unit("initrd.target");
  {
    std::lock_guard lock(mutex_);
    run_callbacks();
    // A bare line, as shutdown's poweroff: the shell that runs it ends with
    // stage 1, so no reply frame ever comes back.
    channels_->shell.write("systemctl isolate --no-block initrd-switch-root.target 2>/dev/null >/dev/null\n",
                           "switching root");
  }
  set_connected(false);
  connect();
}

void Machine::set_connected(bool connected) {
  std::lock_guard lock(mutex_);
  if (connected == connected_) return;
  if (connected) {
    if (!booted_ || !channels_)
      throw Error(fmt::format("{}: cannot mark the shell connected: the machine is not running", label()));
  } else {
    // The backdoor starts a new shell on the same console after a reboot;
    // what the old one knew or still ran is gone with it.
    forget_shell_facts();
    if (channels_) channels_->shell.forget_stale_command();
  }
  connected_ = connected;
}

bool Machine::qmp_connected() const { return channels_ && channels_->qmp.is_open(); }

std::string Machine::wait_for_monitor_prompt() {
  std::lock_guard lock(mutex_);
  auto nest = nested("waiting for monitor prompt");
  return running_channels("the monitor").monitor.read_reply(MonitorClient::OnClose::kFail);
}

std::string Machine::send_monitor_command(const std::string& command) {
  std::lock_guard lock(mutex_);
  run_callbacks();
  if (command.find('\n') != std::string::npos)
    throw Error(fmt::format("{}: a monitor command must be one line, got {:?}", label(), command));
  Channels& channels = running_channels("the monitor");
  if (command.size() > kMonitorLineLimit) {
    // QEMU's monitor keeps the first 4095 bytes of a line and runs those,
    // after echoing (and redrawing) it byte by byte: QMP's
    // human-monitor-command runs the whole command at the socket's speed.
    if (!channels.qmp.is_open())
      throw Error(fmt::format("{}: a monitor command of {} bytes is longer than the {} bytes QEMU's monitor takes, "
                              "and QMP, which takes any length, is not available",
                              label(), command.size(), kMonitorLineLimit));
    auto nest = nested(fmt::format("sending monitor command: {}... ({} bytes, through QMP)", command.substr(0, 200),
                                   command.size()));
    Json reply = channels.qmp.command("human-monitor-command", Json::Object{{"command-line", command}});
    return reply.is_string() ? reply.as_string() : reply.dump();
  }
  auto nest = nested("sending monitor command: " + command);
  MonitorClient& monitor = channels.monitor;
  monitor.send(command);
  auto inner = nested("waiting for monitor prompt");
  return monitor.read_reply(MonitorClient::on_close_for(command));
}

Json Machine::qmp_command(const std::string& command, const Json& arguments) {
  std::lock_guard lock(mutex_);
  if (!channels_ || !channels_->qmp.is_open()) throw MachineError(fmt::format("{}: QMP is not connected (start the machine first)", label()));
  return channels_->qmp.command(command, arguments);
}

Json Machine::wait_for_qmp_event(const std::function<bool(const Json&)>& filter, Duration timeout) {
  std::lock_guard lock(mutex_);
  if (!channels_) throw MachineError(fmt::format("{}: not running, so no QMP events", label()));
  auto nest = nested("waiting for a QMP event");
  auto event = channels_->qmp.wait_for_event(filter, Deadline::after(timeout));
  if (!event)
    throw RequestedAssertionFailed(
        fmt::format("{}: no matching QMP event within {} seconds", label(), timeout.to_string()));
  return std::move(*event);
}

void Machine::shutdown() {
  std::lock_guard lock(mutex_);
  if (!booted_) return;
  channels_->shell.write("poweroff\n", "sending poweroff");
  wait_for_shutdown();
}

void Machine::crash() {
  std::lock_guard lock(mutex_);
  if (!booted_) return;
  log("forced crash");
  if (channels_ && channels_->qmp.is_open()) {
    run_callbacks();
    qmp_command("quit");
  } else {
    send_monitor_command("quit");
  }
  wait_for_shutdown();
}

void Machine::wait_for_shutdown(std::optional<Duration> timeout) {
  std::lock_guard lock(mutex_);
  if (!booted_) return;
  auto nest = nested("waiting for the VM to power off");
  bool done = false;
  switch (channels_->loop.run(done, [] {}, {.deadline = Deadline::after_or_never(timeout), .process_exits = true})) {
    case EventLoop::Outcome::kInterrupted:
      throw Interrupted();
    case EventLoop::Outcome::kTimedOut:
      throw MachineError(fmt::format("{}: QEMU did not exit within {} seconds", label(), timeout->to_string()));
    default:
      break;
  }
  process_->wait(std::nullopt);
  process_->terminate(std::chrono::seconds(0));  // QEMU is gone; so must be what it left in its group
  finish_shutdown();
}

void Machine::finish_shutdown() {
  if (recorder_) recorder_->detach();
  if (booted_) rootlog().machine_event(name(), RunRecord::MachineEvent::stopped);
  if (serial_) {
    serial_->drain(std::chrono::seconds(2));
    serial_->stop();
  }
  channels_.reset();
  pid_.reset();
  qemu_pid_ = -1;
  pending_cache_key_.reset();
  booted_ = false;
  connected_ = false;
}

void Machine::release() {
  std::lock_guard lock(mutex_);
  release_qemu();
  if (::getpid() != creator_) {
    (void)recorder_.release();  // its thread and ffmpeg are the driver's
    return;
  }
  remove_snapshots();  // never a fork's doing
  if (recorder_) recorder_->finish();
}

void Machine::release_qemu() {
  if (!process_) return;
  if (!process_->owned()) {
    // A fork of the driver: QEMU and its channels are the driver's. Closing
    // them here would unregister the sockets from the epoll set the fork
    // shares with the driver, and the serial reader's thread is not here.
    (void)channels_.release();
    (void)serial_.release();
    (void)process_.release();
    return;
  }
  if (recorder_) recorder_->detach();  // its last frame before QEMU goes
  if (!process_->exited()) rootlog().info(fmt::format("kill machine (pid {})", process_->pid()));
  // Also after QEMU exited: kills what its start script left in its group.
  process_->terminate(std::chrono::seconds(5));
  finish_shutdown();
  process_.reset();
}

void Machine::discard_qemu() {
  if (!process_) return;
  process_->terminate(std::chrono::milliseconds(0));
  finish_shutdown();
  process_.reset();
}

void Machine::cleanup_statedir() {
  wipe_state_dir(state_dir(), "VM state directory");
  rootlog().log(fmt::format("deleting VM state directory {}", state_dir().string()));
  rootlog().log("if you want to keep the VM state, pass --keep-vm-state");
}

}  // namespace td
