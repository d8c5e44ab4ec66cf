#include "test_driver/machine.h"

#include <fmt/format.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <cstdlib>
#include <cctype>
#include <cstring>

#include "test_driver/base64.h"
#include "test_driver/errors.h"
#include "test_driver/interrupt.h"
#include "test_driver/json.h"
#include "test_driver/retry.h"
#include "test_driver/shell_protocol.h"
#include "test_driver/shell_words.h"
#include "test_driver/utf8.h"

namespace asio = boost::asio;
using asio::local::stream_protocol;

namespace td {
namespace {

enum class Outcome { kDone, kTimedOut, kExited, kInterrupted, kPanicked };

constexpr std::string_view kMonitorPrompt = "(qemu) ";
constexpr std::string_view kBackdoorLine = "Spawning backdoor root shell...";
// How long the next command waits for a command the host stopped waiting for.
constexpr int kStaleGraceSeconds = 60;

// How much longer than the guest-side timeout the host waits for a command.
constexpr double kHostTimeoutMargin = 60;
// How long QEMU may take to connect to the monitor and shell sockets.
constexpr auto kSocketConnectTimeout = std::chrono::seconds(120);
constexpr double kMonitorReplyTimeout = 300;
constexpr size_t kRecentLines = 20;

void make_private_dir(const std::filesystem::path& path, const std::string& what) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec || !std::filesystem::is_directory(path))
    throw Error(fmt::format("cannot create the {} {}: {}", what, path.string(), ec ? ec.message() : "not a directory"));
  ::chmod(path.c_str(), 0700);
}

void check_socket_path(const std::filesystem::path& path) {
  constexpr size_t limit = sizeof(sockaddr_un::sun_path) - 1;
  if (path.string().size() > limit)
    throw Error(fmt::format("the socket path {} is {} bytes long, more than the {} bytes a Unix socket path may have; "
                            "set TMPDIR to a shorter directory",
                            path.string(), path.string().size(), limit));
}

}  // namespace

// The sockets and watches of one running QEMU, all on one io_context that
// only the thread holding the machine's mutex runs.
struct Machine::Channels {
  asio::io_context io;
  stream_protocol::acceptor monitor_acceptor{io};
  stream_protocol::acceptor shell_acceptor{io};
  stream_protocol::socket monitor{io};
  stream_protocol::socket shell{io};
  stream_protocol::socket qmp{io};
  std::string monitor_buffer;
  std::string shell_buffer;
  std::string qmp_buffer;
  bool qmp_reading = false;
  bool qmp_paused = true;  // outside run(): nothing may stay pending on io
  std::deque<Json> qmp_replies;
  std::deque<Json> qmp_events;  // not yet consumed by wait_for_qmp_event
  bool panicked = false;        // QMP said GUEST_PANICKED
  bool qmp_wake = false;        // a QMP message arrived or the connection closed
  std::function<void(const Json&)> on_qmp_event;
  asio::posix::stream_descriptor exit_watch{io};       // QEMU's pidfd: readable once it exited
  asio::posix::stream_descriptor interrupt_watch{io};  // readable once the user interrupted

  Channels() { interrupt_watch.assign(::dup(interrupt::read_fd())); }
  void watch_exit_of(const Process& process) { exit_watch.assign(::dup(process.pidfd())); }

  // QMP messages are read whenever the io_context runs, so that events are
  // seen (and logged) during any wait, not only QMP's own.
  void read_qmp() {
    if (!qmp.is_open() || qmp_reading || qmp_paused) return;
    qmp_reading = true;
    asio::async_read_until(qmp, asio::dynamic_buffer(qmp_buffer), '\n', [this](auto ec, size_t n) {
      qmp_reading = false;
      if (ec) {
        if (ec != asio::error::operation_aborted) {
          qmp.close();
          qmp_wake = true;
        }
        return;
      }
      qmp_wake = true;
      std::string line = qmp_buffer.substr(0, n);
      qmp_buffer.erase(0, n);
      try {
        Json message = Json::parse(line);
        if (message.find("event")) {
          if (message.string_at("event") == "GUEST_PANICKED") panicked = true;
          if (on_qmp_event) on_qmp_event(message);
          qmp_events.push_back(std::move(message));
        } else if (message.find("return") || message.find("error")) {
          qmp_replies.push_back(std::move(message));
        }
      } catch (const Error&) {
        // Not JSON: QEMU would not send that; ignore rather than die.
      }
      read_qmp();
    });
  }

  // Runs the io_context until `done`, the deadline, QEMU's exit (when
  // watch_exit) or an interrupt; cancels the operation unless done.
  Outcome run(const bool& done, const std::function<void()>& cancel, std::optional<Clock::time_point> deadline,
              bool watch_exit, bool watch_panic = false) {
    bool exited = false, interrupted = false, timed_out = false;
    if (watch_exit) exit_watch.async_wait(asio::posix::descriptor_base::wait_read, [&](auto ec) { exited = !ec; });
    interrupt_watch.async_wait(asio::posix::descriptor_base::wait_read, [&](auto ec) { interrupted = !ec; });
    asio::steady_timer timer(io);
    if (deadline) {
      timer.expires_at(*deadline);
      timer.async_wait([&](auto ec) { timed_out = !ec; });
    }
    io.restart();
    qmp_paused = false;
    read_qmp();
    while (!done && !exited && !interrupted && !timed_out && !(watch_panic && panicked)) {
      if (io.run_one() == 0) break;
    }
    // Cancelling completes the operation's handler too (which sets `done`,
    // with operation_aborted): what ended the wait is decided before that.
    const bool finished = done;
    if (!finished) cancel();
    exit_watch.cancel();
    interrupt_watch.cancel();
    timer.cancel();
    // A QMP message handled while the cancelled handlers run must not arm a
    // new read: io.run() below would wait for it forever.
    qmp_paused = true;
    if (qmp_reading) qmp.cancel();
    io.restart();
    io.run();  // completes the cancelled handlers, which refer to our locals
    if (finished) return Outcome::kDone;
    if (interrupted) return Outcome::kInterrupted;
    if (exited) return Outcome::kExited;
    if (watch_panic && panicked) return Outcome::kPanicked;
    return Outcome::kTimedOut;
  }
};

// Reads QEMU's stdout (the guest's serial console) on a thread of its own
// and logs it line by line.
class Machine::SerialReader {
 public:
  SerialReader(Machine& machine, int fd) : machine_(machine), pipe_(io_, ::dup(fd)) {
    thread_ = std::thread([this] { run(); });
  }
  ~SerialReader() { stop(); }

  void stop() {
    if (!thread_.joinable()) return;
    io_.stop();
    thread_.join();
  }
  // Waits (bounded) for the reader to reach the end of QEMU's output, so
  // that nothing QEMU printed before exiting is lost.
  void drain(std::chrono::milliseconds limit) {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, limit, [&] { return eof_; });
  }

  std::vector<std::string> recent(size_t n) const {
    std::lock_guard lock(mutex_);
    size_t from = lines_.size() > n ? lines_.size() - n : 0;
    return {lines_.begin() + static_cast<long>(from), lines_.end()};
  }
  // Blocks until there are more than `count` lines, the output ended, or
  // `until` passed; returns the line count.
  size_t wait_for_more(size_t count, Clock::time_point until) {
    std::unique_lock lock(mutex_);
    changed_.wait_until(lock, until, [&] { return lines_.size() > count || eof_; });
    return lines_.size();
  }
  bool ended() const {
    std::lock_guard lock(mutex_);
    return eof_;
  }
  size_t size() const {
    std::lock_guard lock(mutex_);
    return lines_.size();
  }
  std::string join(size_t from, size_t to) const {
    std::lock_guard lock(mutex_);
    std::string out;
    for (size_t i = from; i < to && i < lines_.size(); ++i) {
      if (i > from) out += '\n';
      out += lines_[i];
    }
    return out;
  }
  std::string all() const {
    std::lock_guard lock(mutex_);
    std::string out;
    for (const auto& line : lines_) {
      out += line;
      out += '\n';
    }
    return out;
  }

 private:
  void run() {
    read_more();
    io_.run();
    if (!partial_.empty()) emit({clean_line(partial_)});
    std::lock_guard lock(mutex_);
    eof_ = true;
    changed_.notify_all();
  }
  void read_more() {
    pipe_.async_read_some(asio::buffer(chunk_), [this](boost::system::error_code ec, size_t n) {
      partial_.append(chunk_.data(), n);
      std::vector<std::string> batch;
      size_t start = 0;
      for (size_t nl; (nl = partial_.find('\n', start)) != std::string::npos; start = nl + 1)
        batch.push_back(clean_line(std::string_view(partial_).substr(start, nl - start)));
      partial_.erase(0, start);
      emit(std::move(batch));
      if (!ec) read_more();
    });
  }
  static std::string clean_line(std::string_view raw) {
    std::string line = to_valid_utf8(raw);
    std::erase(line, '\r');
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
    return line;
  }
  // Logs what one read brought, then keeps it for the console waits.
  void emit(std::vector<std::string> batch) {
    if (batch.empty()) return;
    rootlog().log_serial(batch, machine_.name());
    std::lock_guard lock(mutex_);
    for (auto& line : batch) lines_.push_back(std::move(line));
    changed_.notify_all();
  }

  Machine& machine_;
  asio::io_context io_;
  asio::posix::stream_descriptor pipe_;
  std::array<char, 65536> chunk_;
  std::string partial_;
  std::thread thread_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::string> lines_;
  bool eof_ = false;
};

Machine::Machine(Options options) : options_(std::move(options)) {
  if (!options_.start_command) throw Error(fmt::format("machine '{}' has no start command", options_.name));
  shared_dir_ = options_.tmp_dir / "shared-xchg";
  state_dir_ = options_.tmp_dir / ("vm-state-" + options_.name);
  monitor_path_ = state_dir_ / "monitor";
  shell_path_ = state_dir_ / "shell";
  qmp_path_ = state_dir_ / "qmp";
  make_private_dir(shared_dir_, "shared directory");
  if (!options_.keep_vm_state && std::filesystem::exists(state_dir_)) cleanup_statedir();
  make_private_dir(state_dir_, "VM state directory");
  if (const char* t = std::getenv("TEST_DRIVER_CONNECT_TIMEOUT")) connect_timeout_ = std::atof(t);
}

Machine::~Machine() {
  try {
    release();
  } catch (...) {
  }
}

void Machine::log(const std::string& message) { rootlog().log(message, {{"machine", name()}}); }

void Machine::log_serial(const std::string& message) { rootlog().log_serial(message, name()); }

std::unique_ptr<Logger::Nest> Machine::nested(const std::string& message, const LogAttributes& attributes) {
  LogAttributes all{{"machine", name()}};
  all.insert(all.end(), attributes.begin(), attributes.end());
  return std::make_unique<Logger::Nest>(rootlog(), message, all);
}

void Machine::run_callbacks() {
  for (auto& callback : options_.callbacks) callback();
}

std::string Machine::recent_output() const {
  if (!serial_) return "";
  std::string out;
  for (const auto& line : serial_->recent(kRecentLines)) out += "\n    " + line;
  return out.empty() ? "" : "; last lines of QEMU's output:" + out;
}

void Machine::fail_channel(const std::string& step, const std::string& reason) {
  std::string why = reason;
  if (process_ && process_->wait(Clock::now() + std::chrono::seconds(1))) {
    if (serial_) serial_->drain(std::chrono::milliseconds(500));
    why = fmt::format("QEMU exited ({})", process_->describe_status());
  }
  throw MachineError(fmt::format("machine '{}': {}: {}{}", name(), step, why, recent_output()));
}

void Machine::start(std::optional<bool> allow_reboot) {
  std::lock_guard lock(mutex_);
  if (booted_) return;
  if (allow_reboot) options_.allow_reboot = *allow_reboot;
  log("starting vm");
  make_private_dir(state_dir_, "VM state directory");
  check_socket_path(monitor_path_);
  check_socket_path(shell_path_);
  check_socket_path(qmp_path_);
  std::filesystem::remove(qmp_path_);

  Process::Options spawn;
  spawn.argv = options_.start_command->argv(monitor_path_.string(), shell_path_.string(), options_.allow_reboot,
                                            qmp_path_.string());
  spawn.env = StartCommand::build_environment(state_dir_.string(), shared_dir_.string());
  spawn.cwd = state_dir_.string();
  spawn.stdin_pipe = true;  // QEMU's -serial stdio reads it: send_console

  auto channels = std::make_unique<Channels>();
  auto listen = [&](stream_protocol::acceptor& acceptor, const std::filesystem::path& path) {
    std::filesystem::remove(path);
    boost::system::error_code ec;
    acceptor.open(stream_protocol(), ec);
    if (!ec) acceptor.bind(stream_protocol::endpoint(path.string()), ec);
    if (!ec) acceptor.listen(1, ec);
    if (ec) throw Error(fmt::format("machine '{}': cannot listen on {}: {}", name(), path.string(), ec.message()));
  };
  listen(channels->monitor_acceptor, monitor_path_);
  listen(channels->shell_acceptor, shell_path_);

  try {
    process_ = Process::spawn(spawn);
  } catch (const Error& e) {
    throw Error(fmt::format("machine '{}': cannot run the start command {}: {}", name(),
                            options_.start_command->base_command(), e.what()));
  }
  channels->watch_exit_of(*process_);
  channels_ = std::move(channels);
  serial_ = std::make_unique<SerialReader>(*this, process_->output_fd());
  console_cursor_ = 0;
  stale_command_.reset();
  bash_has_dev_tcp_.reset();

  try {
    accept_channels();
    connect_qmp();
    read_monitor_reply(false);  // the banner; no log nest, so machines can start in parallel
  } catch (...) {
    release();
    throw;
  }
  pid_ = process_->pid();
  booted_ = true;
  log(fmt::format("QEMU running (pid {})", *pid_));
}

void Machine::accept_channels() {
  // TEST_DRIVER_CONNECT_TIMEOUT, the whole boot's budget, caps this too.
  double limit = std::min<double>(std::chrono::duration<double>(kSocketConnectTimeout).count(), connect_timeout_);
  auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(limit));
  auto accept = [&](stream_protocol::acceptor& acceptor, stream_protocol::socket& socket, const char* what) {
    bool done = false;
    boost::system::error_code ec;
    acceptor.async_accept(socket, [&](auto e) {
      ec = e;
      done = true;
    });
    switch (channels_->run(done, [&] { acceptor.cancel(); }, deadline, true)) {
      case Outcome::kDone:
        if (ec) fail_channel(fmt::format("accepting QEMU's {} connection", what), ec.message());
        return;
      case Outcome::kExited:
        fail_channel(fmt::format("waiting for QEMU to connect to the {} socket", what), "QEMU exited");
      case Outcome::kInterrupted:
        throw Interrupted();
      case Outcome::kPanicked:  // not watched
      case Outcome::kTimedOut:
        fail_channel(fmt::format("waiting for QEMU to connect to the {} socket", what),
                     fmt::format("no connection within {} seconds", format_seconds(limit)));
    }
  };
  accept(channels_->monitor_acceptor, channels_->monitor, "monitor");
  accept(channels_->shell_acceptor, channels_->shell, "shell");
  channels_->monitor_acceptor.close();
  channels_->shell_acceptor.close();
}

void Machine::connect_qmp() {
  boost::system::error_code ec;
  channels_->qmp.connect(stream_protocol::endpoint(qmp_path_.string()), ec);
  if (ec) {
    // A start command that drops our -qmp (or a stand-in QEMU) still works
    // through the human monitor.
    log(fmt::format("QMP is not available ({}): using the human monitor only", ec.message()));
    channels_->qmp.close();
    return;
  }
  channels_->on_qmp_event = [this](const Json& event) {
    const Json* data = event.find("data");
    log(fmt::format("QMP event: {}{}", event.string_at("event"), data ? " " + data->dump() : ""));
  };
  qmp_command("qmp_capabilities");
}

Json Machine::read_qmp_reply(const std::string& step, bool expect_exit) {
  auto deadline = Clock::now() + std::chrono::seconds(static_cast<long>(kMonitorReplyTimeout));
  for (;;) {
    if (!channels_->qmp_replies.empty()) {
      Json reply = std::move(channels_->qmp_replies.front());
      channels_->qmp_replies.pop_front();
      return reply;
    }
    if (!channels_->qmp.is_open()) {
      if (expect_exit) return Json();
      fail_channel(step, "the QMP connection closed");
    }
    channels_->qmp_wake = false;
    switch (channels_->run(channels_->qmp_wake, [] {}, deadline, false)) {
      case Outcome::kInterrupted:
        throw Interrupted();
      case Outcome::kTimedOut:
        fail_channel(step, fmt::format("no QMP reply within {} seconds", kMonitorReplyTimeout));
      default:
        break;
    }
  }
}

Json Machine::qmp_command(const std::string& command, const Json& arguments) {
  std::lock_guard lock(mutex_);
  if (!channels_ || !channels_->qmp.is_open())
    throw MachineError(fmt::format("machine '{}': QMP is not connected (start the machine first)", name()));
  Json::Object message{{"execute", command}};
  if (!arguments.is_null()) message.emplace_back("arguments", arguments);
  std::string step = "QMP command " + command;
  boost::system::error_code ec;
  asio::write(channels_->qmp, asio::buffer(Json(message).dump() + "\n"), ec);
  if (ec) fail_channel(step, ec.message());
  Json reply = read_qmp_reply(step, command == "quit");
  if (const Json* error = reply.find("error"))
    throw QmpError(fmt::format("machine '{}': {} failed: {}: {}", name(), step, error->string_at("class"),
                               error->string_at("desc")));
  const Json* value = reply.find("return");
  return value ? *value : Json();
}

Json Machine::wait_for_qmp_event(const std::function<bool(const Json&)>& filter, double timeout) {
  std::lock_guard lock(mutex_);
  if (!channels_) throw MachineError(fmt::format("machine '{}': not running, so no QMP events", name()));
  auto nest = nested("waiting for a QMP event");
  auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout));
  for (;;) {
    while (!channels_->qmp_events.empty()) {
      Json event = std::move(channels_->qmp_events.front());
      channels_->qmp_events.pop_front();
      if (filter(event)) return event;
    }
    if (!channels_->qmp.is_open()) fail_channel("waiting for a QMP event", "the QMP connection closed");
    channels_->qmp_wake = false;
    switch (channels_->run(channels_->qmp_wake, [] {}, deadline, false)) {
      case Outcome::kInterrupted:
        throw Interrupted();
      case Outcome::kTimedOut:
        throw RequestedAssertionFailed(
            fmt::format("machine '{}': no matching QMP event within {} seconds", name(), format_seconds(timeout)));
      default:
        break;
    }
  }
}

bool Machine::read_shell_reply(ShellReply& reply, std::optional<Clock::time_point> deadline, const std::string& step) {
  std::string& buffer = channels_->shell_buffer;
  if (!buffer.empty()) buffer.erase(0, reply.feed(buffer));
  // Each piece is read into a buffer of its own and decoded at once, so the
  // socket is drained at a steady pace however large the output grows.
  std::array<char, 256 * 1024> chunk;
  boost::system::error_code ec;
  bool done = reply.complete();
  std::function<void()> read_more = [&] {
    channels_->shell.async_read_some(asio::buffer(chunk), [&](auto e, size_t n) {
      std::string_view piece(chunk.data(), n);
      size_t used = reply.feed(piece);
      if (used < n) buffer.append(piece.substr(used));
      if (e || reply.complete()) {
        ec = e;
        done = true;
      } else {
        read_more();
      }
    });
  };
  if (!done) read_more();
  switch (channels_->run(done, [&] { channels_->shell.cancel(); }, deadline, false, true)) {
    case Outcome::kDone:
      break;
    case Outcome::kPanicked:
      fail_channel(step, "the guest panicked (QMP event GUEST_PANICKED)");
    case Outcome::kInterrupted:
      throw Interrupted();
    case Outcome::kTimedOut:
      return false;
    case Outcome::kExited:
      break;  // not watched
  }
  if (!reply.complete())
    fail_channel(step, ec == asio::error::eof ? "the guest shell's connection closed" : ec.message());
  return true;
}

void Machine::write_shell(const std::string& data, const std::string& step) {
  boost::system::error_code ec;
  bool done = false;
  asio::async_write(channels_->shell, asio::buffer(data), [&](auto e, size_t) {
    ec = e;
    done = true;
  });
  // A minute, plus a second per 100 kB for large inputs.
  auto deadline = Clock::now() + std::chrono::seconds(60 + static_cast<long>(data.size() / 100000));
  switch (channels_->run(done, [&] { channels_->shell.cancel(); }, deadline, false)) {
    case Outcome::kInterrupted:
      throw Interrupted();
    case Outcome::kTimedOut:
      fail_channel(step, "the guest shell does not read its input");
    default:
      break;
  }
  if (ec) fail_channel(step, ec.message());
}

void Machine::connect() {
  std::lock_guard lock(mutex_);
  if (connected_) return;
  auto nest = nested("waiting for the VM to finish booting");
  start();
  auto tic = Clock::now();
  auto deadline = tic + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(connect_timeout_));
  auto next_note = tic + std::chrono::seconds(30);
  for (;;) {
    // Wake up every 30 s to say what we wait for; a silent wait looks hung.
    bool done = false;
    boost::system::error_code ec;
    size_t n = 0;
    asio::async_read_until(channels_->shell, asio::dynamic_buffer(channels_->shell_buffer), '\n',
                           [&](auto e, size_t k) {
                             ec = e;
                             n = k;
                             done = true;
                           });
    Outcome outcome =
        channels_->run(done, [&] { channels_->shell.cancel(); }, std::min(deadline, next_note), false, true);
    if (outcome == Outcome::kInterrupted) throw Interrupted();
    if (outcome == Outcome::kPanicked)
      fail_channel("waiting for the guest's backdoor shell", "the guest panicked (QMP event GUEST_PANICKED)");
    if (outcome == Outcome::kTimedOut) {
      if (Clock::now() >= deadline)
        fail_channel("waiting for the guest's backdoor shell",
                     fmt::format("no \"{}\" line within {} seconds", kBackdoorLine, format_seconds(connect_timeout_)));
      std::chrono::duration<double> waited = Clock::now() - tic;
      log(fmt::format("still waiting for the guest's backdoor shell on {} ({:.0f} seconds so far)", shell_path_.string(),
                      waited.count()));
      next_note += std::chrono::seconds(30);
      continue;
    }
    if (ec) fail_channel("waiting for the guest's backdoor shell", ec == asio::error::eof ? "the shell connection closed" : ec.message());
    std::string line = channels_->shell_buffer.substr(0, n);
    channels_->shell_buffer.erase(0, n);
    // Current guests print the "Spawning…" line, older ones a bare newline;
    // anything else before it is noise.
    if (line.find(kBackdoorLine) != std::string::npos || line == "\n" || line == "\r\n") break;
  }
  std::chrono::duration<double> took = Clock::now() - tic;
  log("connected to guest root shell");
  log(fmt::format("(connecting took {:.2f} seconds)", took.count()));
  connected_ = true;
}

std::pair<int, std::string> Machine::execute(const std::string& command, bool check_return,
                                             std::optional<double> timeout, bool check_output) {
  return run_command(command, check_return, timeout, check_output, {});
}

std::pair<int, std::string> Machine::probe(const std::string& command, Clock::time_point deadline) {
  return run_command(command, true, std::nullopt, true, {}, deadline);
}

Machine::Clock::time_point Machine::host_deadline(double seconds) {
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(
                            std::chrono::duration<double>(seconds + kHostTimeoutMargin));
}

void Machine::finish_stale_command() {
  if (!stale_command_) return;
  // Ctrl-C or the host's deadline stopped the driver's wait, not the guest's
  // command: its reply comes first, and is dropped.
  std::string step = fmt::format("waiting for the earlier command `{}` (the driver stopped waiting for it)",
                                 stale_command_->command);
  log(step);
  ShellReply dropped(true);
  if (!read_shell_reply(dropped, stale_command_->deadline, step)) {
    // The next command waits for it again, as long.
    stale_command_->deadline = Clock::now() + std::chrono::seconds(kStaleGraceSeconds);
    throw MachineError(fmt::format("machine '{}': {}: it has not finished in time; the guest shell is still busy{}",
                                   name(), step, recent_output()));
  }
  stale_command_.reset();
}

std::pair<int, std::string> Machine::run_command(const std::string& command, bool check_return,
                                                 std::optional<double> timeout, bool check_output,
                                                 std::string_view input,
                                                 std::optional<Clock::time_point> probe_until) {
  std::lock_guard lock(mutex_);
  run_callbacks();
  connect();
  if (timeout && *timeout <= 0) throw Error(fmt::format("timeout must be positive, got {}", format_seconds(*timeout)));
  // The command reaches the guest's bash as one quoted word either way, so
  // that no quote, comment or parenthesis in it can leave bash waiting for
  // more input (the reference hung there when there was no timeout).
  std::string wrapped = timeout ? fmt::format("timeout {} sh -c {}", format_seconds(*timeout), shell_quote(command))
                                : "eval " + bash_ansi_c_quote(command);
  std::optional<Clock::time_point> deadline = timeout ? host_deadline(*timeout) : probe_until;
  finish_stale_command();
  std::string step = fmt::format("running `{}`", command);
  std::string line = shell_command_line(wrapped, check_output, check_return);
  // Input follows the command line on the shell's stdin (bash reads its
  // script byte by byte, so the bytes after the newline are the command's).
  write_shell(input.empty() ? line : line + std::string(input), step);
  ShellReply reply(check_return);
  bool answered = false;
  try {
    answered = read_shell_reply(reply, deadline, step);
  } catch (const Interrupted&) {
    stale_command_ = StaleCommand{command, deadline};
    throw;
  }
  if (!answered) {
    // A probe's guest command has no timeout of its own: give it a grace
    // period before the next command gives up on the shell.
    stale_command_ = StaleCommand{command, Clock::now() + std::chrono::seconds(kStaleGraceSeconds)};
    throw MachineError(fmt::format("machine '{}': {}: no answer from the guest shell in time{}", name(), step,
                                   recent_output()));
  }
  if (reply.error()) throw MachineError(fmt::format("machine '{}': {}: {:.300}", name(), step, to_valid_utf8(*reply.error())));
  std::string text = to_valid_utf8(reply.take_output());
  if (!check_return) return {-1, std::move(text)};
  if (!check_output) return {-2, ""};
  return {reply.status(), std::move(text)};
}

std::string Machine::succeed(const std::vector<std::string>& commands, std::optional<double> timeout) {
  std::string output;
  for (const auto& command : commands) {
    auto nest = nested("must succeed: " + command);
    auto [status, out] = execute(command, true, timeout);
    if (status != 0) {
      log("output: " + out);
      throw RequestedAssertionFailed(fmt::format("command `{}` failed (exit code {})", command, status));
    }
    output += out;
  }
  return output;
}

std::string Machine::fail(const std::vector<std::string>& commands, std::optional<double> timeout) {
  std::string output;
  for (const auto& command : commands) {
    auto nest = nested("must fail: " + command);
    auto [status, out] = execute(command, true, timeout);
    if (status == 0) throw RequestedAssertionFailed(fmt::format("command `{}` unexpectedly succeeded", command));
    output += out;
  }
  return output;
}

std::string Machine::wait_until_succeeds(const std::string& command, double timeout) {
  auto nest = nested("waiting for success: " + command);
  std::string output;
  retry(
      [&](bool) {
        auto [status, out] = execute(command, true, timeout);
        output = std::move(out);
        return status == 0;
      },
      timeout);
  return output;
}

std::string Machine::wait_until_fails(const std::string& command, double timeout) {
  auto nest = nested("waiting for failure: " + command);
  std::string output;
  retry(
      [&](bool) {
        auto [status, out] = execute(command, true, timeout);
        output = std::move(out);
        return status != 0;
      },
      timeout);
  return output;
}

std::string Machine::read_monitor_reply(bool expect_exit) {
  if (!channels_) throw MachineError(fmt::format("machine '{}': the monitor is not connected (start the machine first)", name()));
  std::string& buffer = channels_->monitor_buffer;
  bool done = false;
  boost::system::error_code ec;
  std::array<char, 16384> chunk;
  std::function<void()> read_more = [&] {
    channels_->monitor.async_read_some(asio::buffer(chunk), [&](auto e, size_t n) {
      buffer.append(chunk.data(), n);
      if (e || buffer.ends_with(kMonitorPrompt)) {
        ec = e;
        done = true;
      } else {
        read_more();
      }
    });
  };
  read_more();
  auto deadline = Clock::now() + std::chrono::seconds(static_cast<long>(kMonitorReplyTimeout));
  switch (channels_->run(done, [&] { channels_->monitor.cancel(); }, deadline, false)) {
    case Outcome::kInterrupted:
      throw Interrupted();
    case Outcome::kTimedOut:
      fail_channel("waiting for the monitor prompt", fmt::format("no prompt within {} seconds", kMonitorReplyTimeout));
    default:
      break;
  }
  std::string answer = to_valid_utf8(buffer);
  buffer.clear();
  if (ec && !expect_exit) fail_channel("waiting for the monitor prompt", ec == asio::error::eof ? "the monitor connection closed" : ec.message());
  return answer;
}

std::string Machine::wait_for_monitor_prompt() {
  std::lock_guard lock(mutex_);
  auto nest = nested("waiting for monitor prompt");
  return read_monitor_reply(false);
}

std::string Machine::send_monitor_command(const std::string& command) {
  std::lock_guard lock(mutex_);
  run_callbacks();
  if (command.find('\n') != std::string::npos)
    throw Error(fmt::format("machine '{}': a monitor command must be one line, got {:?}", name(), command));
  auto nest = nested("sending monitor command: " + command);
  if (!channels_) throw MachineError(fmt::format("machine '{}': the monitor is not connected (start the machine first)", name()));
  boost::system::error_code ec;
  asio::write(channels_->monitor, asio::buffer(command + "\n"), ec);
  if (ec) fail_channel("sending monitor command " + command, ec.message());
  auto inner = nested("waiting for monitor prompt");
  return read_monitor_reply(command == "quit" || command == "q");
}

std::string Machine::console_log() const { return serial_ ? serial_->all() : ""; }

void Machine::wait_for_console_text(const std::string& regex_text, const TextMatcher& matches,
                                    std::optional<double> timeout) {
  auto nest = nested(fmt::format("waiting for {} to appear on console", regex_text));
  std::optional<Clock::time_point> deadline;
  if (timeout) deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(*timeout));
  size_t seen = console_cursor_;
  for (;;) {
    if (!serial_) throw MachineError(fmt::format("machine '{}': the machine is not running, so its console is silent", name()));
    size_t count = serial_->size();
    if (count > seen || count == console_cursor_) {
      // Lines not yet consumed, including those from before this call.
      seen = count;
      if (count > console_cursor_ && matches(serial_->join(console_cursor_, count))) {
        console_cursor_ = count;
        return;
      }
    }
    if (serial_->ended()) fail_channel(fmt::format("waiting for {} to appear on console", regex_text), "the console ended");
    interrupt::check();
    auto slice = Clock::now() + std::chrono::milliseconds(200);  // to notice interrupts
    if (deadline && *deadline <= Clock::now())
      throw RequestedAssertionFailed(fmt::format("machine '{}': {} did not appear on the console within {} seconds",
                                                 name(), regex_text, format_seconds(*timeout)));
    serial_->wait_for_more(seen, deadline ? std::min(*deadline, slice) : slice);
  }
}

void Machine::console_interact() {
  log("Forwarding stdin to the serial console; Ctrl-D ends");
  for (;;) {
    pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {interrupt::read_fd(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      throw Error(fmt::format("console_interact: poll: {}", std::strerror(errno)));
    }
    if (fds[1].revents) throw Interrupted();
    char buffer[4096];
    ssize_t n = ::read(STDIN_FILENO, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    send_console(std::string(buffer, static_cast<size_t>(n)));
  }
  log("Closing connection to the console");
}

void Machine::send_console(const std::string& chars) {
  std::lock_guard lock(mutex_);
  if (!process_ || process_->input_fd() < 0)
    throw MachineError(fmt::format("machine '{}': not running, cannot write to its console", name()));
  size_t done = 0;
  while (done < chars.size()) {
    ssize_t n = ::write(process_->input_fd(), chars.data() + done, chars.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail_channel("writing to the serial console", std::strerror(errno));
    done += static_cast<size_t>(n);
  }
}

void Machine::shell_interact() {
  std::lock_guard lock(mutex_);
  connect();
  log("Terminal is ready (there is no initial prompt):");
  Process::Options socat;
  // Debian's socat is built without readline: line editing where it can.
  Process::Options probe;
  probe.argv = {"socat", "-V"};
  bool readline = Process::run(probe, std::chrono::seconds(10)).output.find("#define WITH_READLINE 1") != std::string::npos;
  socat.argv = {"socat", readline ? "READLINE,prompt=$ " : "STDIO", "FD:3"};
  socat.inherit_stdio = true;
  socat.capture_stdout = false;
  socat.pass_fds = {channels_->shell.native_handle()};
  // O_NONBLOCK belongs to the open file, which socat shares: blocking for it.
  channels_->shell.native_non_blocking(false);
  auto process = Process::spawn(socat);
  process->wait(std::nullopt);
  channels_->shell.native_non_blocking(true);
  if (!process->exited() || WEXITSTATUS(process->status()) != 0)
    log(fmt::format("socat ended with {}", process->describe_status()));
}

void Machine::shutdown() {
  std::lock_guard lock(mutex_);
  if (!booted_) return;
  write_shell("poweroff\n", "sending poweroff");
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

void Machine::wait_for_shutdown(std::optional<double> timeout) {
  std::lock_guard lock(mutex_);
  if (!booted_) return;
  auto nest = nested("waiting for the VM to power off");
  std::optional<Clock::time_point> deadline;
  if (timeout) deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(*timeout));
  bool done = false;
  switch (channels_->run(done, [] {}, deadline, true)) {
    case Outcome::kInterrupted:
      throw Interrupted();
    case Outcome::kTimedOut:
      throw MachineError(fmt::format("machine '{}': QEMU did not exit within {} seconds", name(), format_seconds(*timeout)));
    default:
      break;
  }
  process_->wait(std::nullopt);
  process_->terminate(std::chrono::seconds(0));  // QEMU is gone; so must be what it left in its group
  finish_shutdown();
}

void Machine::finish_shutdown() {
  if (serial_) {
    serial_->drain(std::chrono::seconds(2));
    serial_->stop();
  }
  channels_.reset();
  pid_.reset();
  booted_ = false;
  connected_ = false;
}

void Machine::release() {
  std::lock_guard lock(mutex_);
  if (!process_) return;
  if (!process_->exited()) rootlog().info(fmt::format("kill machine (pid {})", process_->pid()));
  // Also after QEMU exited: kills what its start script left in its group.
  process_->terminate(std::chrono::seconds(5));
  finish_shutdown();
  process_.reset();
}

void Machine::cleanup_statedir() {
  std::error_code ec;
  std::filesystem::remove_all(state_dir_, ec);
  if (ec) throw Error(fmt::format("cannot delete the VM state directory {}: {}", state_dir_.string(), ec.message()));
  rootlog().log(fmt::format("deleting VM state directory {}", state_dir_.string()));
  rootlog().log("if you want to keep the VM state, pass --keep-vm-state");
}

}  // namespace td
