// NspawnMachine: a systemd-nspawn container's lifecycle, its root shell
// in the container's namespaces, and its console.
#include "test_driver/nspawn_machine.h"

#include <fmt/format.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/local/stream_protocol.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <regex>

#include "test_driver/container_process.h"
#include "test_driver/errors.h"
#include "test_driver/event_loop.h"
#include "test_driver/interrupt.h"
#include "test_driver/process.h"
#include "test_driver/serial_reader.h"
#include "test_driver/shell_session.h"
#include "test_driver/start_command.h"
#include "test_driver/state_dir_lock.h"

namespace td {
namespace {

// How many of the console's last lines an error shows.
constexpr size_t kRecentLines = 20;
// How often connect() looks for the container's init.
constexpr std::chrono::milliseconds kInitPollInterval{20};
// How long release() gives the start script to clean up after the init is
// killed (it removes the container's cgroup), before it kills the script.
constexpr std::chrono::seconds kCleanupGrace{5};

// The root shell in the container, as NixOS's backdoor starts it on a VM:
// root's environment from /etc/profile, in /tmp, stderr on the console (the
// log), then the greeting the driver waits for and bash reading commands
// from the socket. A VM's backdoor is a unit that systemd starts late in
// the boot; here the greeting waits until systemd answers systemctl (its
// private socket exists), so that the first command can use it.
const std::vector<std::string> kBackdoorShell = {
    "/bin/sh", "-c",
    "export USER=root HOME=/root; [ -r /etc/profile ] && . /etc/profile; export PAGER=; cd /tmp 2>/dev/null || cd /; "
    "[ -w /dev/console ] && exec 2>/dev/console; "
    "if [ \"$(cat /proc/1/comm)\" = systemd ]; then while [ ! -S /run/systemd/private ]; do sleep 0.02; done; fi; "
    "echo 'Spawning backdoor root shell...'; PS1= exec bash --norc"};
// PATH for the shell until /etc/profile sets the container's own (NixOS's
// first, then the FHS directories).
constexpr const char* kShellPath =
    "PATH=/run/wrappers/bin:/run/current-system/sw/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

BaseMachine::Setup setup_of(NspawnMachine::Options& options) {
  if (options.start_script.empty()) throw Error("a container needs a start script (run-NAME-nspawn)");
  if (options.name.empty()) options.name = NspawnMachine::name_from_script(options.start_script);
  BaseMachine::Setup setup;
  setup.name = options.name;
  setup.out_dir = options.out_dir;
  setup.tmp_dir = options.tmp_dir;
  setup.shared_dir = options.tmp_dir / "shared-xchg";
  setup.state_dir = options.tmp_dir / ("nspawn-state-" + options.name);
  setup.callbacks = std::move(options.callbacks);
  return setup;
}

}  // namespace

// The channels of one running container: the shell, on an event loop that
// also watches the start script.
struct NspawnMachine::Channels {
  EventLoop loop;
  ChannelOwner& owner;
  std::string label;
  std::unique_ptr<ShellSession> shell;
  std::unique_ptr<Process> shell_process;  // in the container's namespaces

  Channels(ChannelOwner& channel_owner, std::string machine_label)
      : owner(channel_owner), label(std::move(machine_label)) {}
};

std::string NspawnMachine::name_from_script(const std::string& script) {
  static const std::regex pattern("run-(.+)-nspawn$");
  std::smatch match;
  if (std::regex_search(script, match, pattern)) return match[1];
  return "machine";
}

bool NspawnMachine::is_container_script(const std::string& script) {
  static const std::regex pattern("run-(.+)-nspawn$");
  return std::regex_search(script, pattern);
}

NspawnMachine::NspawnMachine(Options options) : BaseMachine(setup_of(options)), options_(std::move(options)) {
  make_private_dir(shared_dir(), "shared directory");
  std::error_code ec;
  bool existed = std::filesystem::exists(state_dir(), ec);
  make_private_dir(state_dir(), "container state directory");
  state_lock_ = lock_state_dir(state_dir(), "container state directory");
  if (!options_.keep_machine_state && existed) wipe_state_dir(state_dir(), "container state directory");
  if (const char* t = std::getenv("TEST_DRIVER_CONNECT_TIMEOUT")) connect_timeout_ = std::max(0.0, std::atof(t));
}

NspawnMachine::~NspawnMachine() {
  try {
    release();
  } catch (...) {
  }
}

std::optional<pid_t> NspawnMachine::pid() const {
  if (!script_ || script_->exited()) return std::nullopt;
  return script_->pid();
}

std::string NspawnMachine::recent_output() const {
  if (!console_) return "";
  std::string out;
  for (const auto& line : console_->recent(kRecentLines)) out += "\n    " + line;
  return out.empty() ? "" : "; last lines of the container's console:" + out;
}

MachineError NspawnMachine::channel_error(const std::string& step, const std::string& reason) {
  std::string why = reason;
  if (script_ && script_->wait(Clock::now() + std::chrono::seconds(1))) {
    if (console_) console_->drain(std::chrono::milliseconds(500));
    why = fmt::format("the container stopped (its start script {} ended with {})", options_.start_script,
                      script_->describe_status());
  }
  return MachineError(fmt::format("{}: {}: {}{}", label(), step, why, recent_output()));
}

ShellSession& NspawnMachine::session() {
  if (!channels_ || !channels_->shell)
    throw MachineError(fmt::format("{}: the shell is not connected (start the container first)", label()));
  return *channels_->shell;
}

void NspawnMachine::start() {
  std::lock_guard lock(mutex_);
  if (booted_) return;
  log("starting container");
  if (const char* v = std::getenv("TEST_DRIVER_VIDEO"); v && std::string_view(v) == "1")
    log("video: not recorded, a container has no screen");
  if (::geteuid() != 0)
    throw Error(fmt::format("{}: systemd-nspawn containers need root, and the driver runs as uid {}", label(),
                            ::geteuid()));
  if (Process::find_program("systemd-nspawn").empty())
    throw Error(fmt::format("{}: systemd-nspawn is not installed (Debian package systemd-container)", label()));
  make_private_dir(state_dir(), "container state directory");
  make_private_dir(root_dir(), "container root directory");

  Process::Options spawn;
  std::error_code ec;
  spawn.argv = {std::filesystem::exists(options_.start_script, ec)
                    ? std::filesystem::absolute(options_.start_script).lexically_normal().string()
                    : options_.start_script};
  for (auto& entry : StartCommand::build_environment(state_dir().string(), shared_dir().string()))
    if (!entry.starts_with("RUN_NSPAWN_ROOT_DIR=") && !entry.starts_with("RUN_NSPAWN_SHARED_DIR="))
      spawn.env.push_back(std::move(entry));
  spawn.env.push_back("RUN_NSPAWN_ROOT_DIR=" + root_dir().string());
  spawn.env.push_back("RUN_NSPAWN_SHARED_DIR=" + shared_dir().string());
  spawn.cwd = state_dir().string();

  auto channels = std::make_unique<Channels>(*this, label());
  try {
    script_ = Process::spawn(spawn);
  } catch (const Error& e) {
    throw Error(fmt::format("{}: cannot run the start script {}: {}", label(), options_.start_script, e.what()));
  }
  channels->loop.watch_exit_of(script_->pidfd());
  channels_ = std::move(channels);
  console_ = std::make_unique<SerialReader>(name(), rootlog(), script_->output_fd());
  reset_console_cursor();
  forget_shell_facts();
  booted_ = true;
  rootlog().machine_event(name(), RunRecord::MachineEvent::started);
  log(fmt::format("container starting (start script pid {})", script_->pid()));
}

pid_t NspawnMachine::wait_for_init(Deadline deadline) {
  const std::string step = "waiting for the container's init";
  for (;;) {
    if (auto init = find_container_init(script_->pid())) return *init;
    if (deadline.passed())
      fail_channel(step, fmt::format("no init within {} seconds", connect_timeout_.to_string()));
    bool never = false;
    auto slice = Deadline::at(Clock::now() + kInitPollInterval);
    switch (channels_->loop.run(never, [] {}, {.deadline = deadline.sooner(slice), .process_exits = true})) {
      case EventLoop::Outcome::kExited:
        fail_channel(step, "the start script exited");
      case EventLoop::Outcome::kInterrupted:
        throw Interrupted();
      default:
        break;
    }
  }
}

void NspawnMachine::open_shell(pid_t init, Deadline deadline) {
  int ends[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ends) != 0)
    throw Error(fmt::format("{}: socketpair: {}", label(), std::strerror(errno)));
  Process::Options shell;
  shell.argv = kBackdoorShell;
  shell.env = {kShellPath};
  shell.enter_namespaces_of = init;
  shell.stdin_fd = ends[1];
  shell.capture_stdout = false;
  shell.stdout_fd = ends[1];
  channels_->shell.reset();
  channels_->shell_process.reset();
  try {
    channels_->shell_process = Process::spawn(shell);
  } catch (const Error& e) {
    ::close(ends[0]);
    ::close(ends[1]);
    fail_channel("starting the root shell in the container", e.what());
  }
  ::close(ends[1]);
  channels_->shell = std::make_unique<ShellSession>(channels_->loop, *this, label());
  channels_->shell->socket().assign(boost::asio::local::stream_protocol(), ends[0]);
  channels_->shell->wait_for_greeting(deadline.remaining(), [&](Duration waited) {
    log(fmt::format("still waiting for the container's root shell ({:.0f} seconds so far)", waited.seconds()));
  });
}

void NspawnMachine::connect() {
  std::lock_guard lock(mutex_);
  if (connected_) return;
  auto nest = nested("waiting for the container to start");
  start();
  auto tic = Clock::now();
  auto deadline = Deadline::after(connect_timeout_);
  pid_t init = wait_for_init(deadline);
  init_ = init;
  open_shell(init, deadline);
  std::chrono::duration<double> took = Clock::now() - tic;
  log(fmt::format("connected to the container's root shell (init pid {})", init));
  log(fmt::format("(connecting took {:.2f} seconds)", took.count()));
  connected_ = true;
  rootlog().machine_event(name(), RunRecord::MachineEvent::connected);
}

void NspawnMachine::set_connected(bool connected) {
  std::lock_guard lock(mutex_);
  if (connected == connected_) return;
  if (connected) {
    if (!booted_ || !channels_ || !channels_->shell)
      throw Error(fmt::format("{}: cannot mark the shell connected: the container has no shell", label()));
  } else {
    forget_shell_facts();
    if (channels_ && channels_->shell) channels_->shell->forget_stale_command();
  }
  connected_ = connected;
}

void NspawnMachine::shutdown() {
  std::lock_guard lock(mutex_);
  if (!booted_) return;
  connect();
  session().write("poweroff\n", "sending poweroff");
  wait_for_shutdown();
}

void NspawnMachine::crash() {
  std::lock_guard lock(mutex_);
  if (!booted_) return;
  log("forced crash");
  if (!init_) {
    if (auto init = find_container_init(script_->pid())) init_ = *init;
  }
  if (init_)
    ::kill(*init_, SIGKILL);
  else
    script_->signal_group(SIGKILL);
  wait_for_shutdown();
}

void NspawnMachine::wait_for_shutdown(std::optional<Duration> timeout) {
  std::lock_guard lock(mutex_);
  if (!booted_) return;
  auto nest = nested("waiting for the container to stop");
  bool done = false;
  switch (channels_->loop.run(done, [] {}, {.deadline = Deadline::after_or_never(timeout), .process_exits = true})) {
    case EventLoop::Outcome::kInterrupted:
      throw Interrupted();
    case EventLoop::Outcome::kTimedOut:
      throw MachineError(fmt::format("{}: the container did not stop within {} seconds", label(), timeout->to_string()));
    default:
      break;
  }
  script_->wait(std::nullopt);
  script_->terminate(std::chrono::seconds(0));  // what the script left in its group
  log(fmt::format("container stopped (start script: {})", script_->describe_status()));
  finish_shutdown();
}

void NspawnMachine::finish_shutdown() {
  if (booted_) rootlog().machine_event(name(), RunRecord::MachineEvent::stopped);
  if (console_) {
    console_->drain(std::chrono::seconds(2));
    console_->stop();
  }
  channels_.reset();
  init_.reset();
  booted_ = false;
  connected_ = false;
}

void NspawnMachine::release() {
  std::lock_guard lock(mutex_);
  if (!script_) return;
  if (!script_->owned()) {
    // A fork of the driver (see Machine::release): the container is the driver's.
    (void)channels_.release();
    (void)console_.release();
    (void)script_.release();
    return;
  }
  if (!script_->exited()) {
    rootlog().info(fmt::format("kill container {} (start script pid {})", name(), script_->pid()));
    // Killing the init ends the container; its start script then removes
    // what it made on the host (the cgroup) and exits.
    if (!init_) {
      if (auto init = find_container_init(script_->pid())) init_ = *init;
    }
    if (init_) {
      ::kill(*init_, SIGKILL);
      script_->wait(Clock::now() + kCleanupGrace);
    }
  }
  script_->terminate(kCleanupGrace);
  finish_shutdown();
  script_.reset();
}

}  // namespace td
