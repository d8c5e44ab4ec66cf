// Machine's snapshots: save_snapshot/restore_snapshot within a run, and the
// boot cache across runs (snapshot.h, boot_cache.h).
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <random>
#include <regex>

#include "test_driver/errors.h"
#include "test_driver/machine.h"
#include "test_driver/qmp_client.h"
#include "test_driver/screen_recorder.h"
#include "test_driver/shell_session.h"
#include "test_driver/shell_words.h"
#include "test_driver/snapshot.h"

namespace td {
namespace {

// A save's or a load's migration.
constexpr Duration kMigrationTimeout{300.0};
// Each guest command of a save or a restore, and the shell's resync.
constexpr Duration kGuestStepTimeout{60.0};

std::string random_nonce() {
  std::random_device random;
  return fmt::format("td-resync-{:08x}{:08x}", random(), random());
}

bool same_or_under(const std::filesystem::path& path, const std::filesystem::path& dir) {
  std::error_code ec;
  auto p = std::filesystem::weakly_canonical(path, ec).string();
  auto d = std::filesystem::weakly_canonical(dir, ec).string();
  return p == d || p.starts_with(d + "/");
}

}  // namespace

struct Machine::SavedState {
  std::filesystem::path file;
  bool compressed = false;
  std::vector<NinePMount> mounts;  // released before the save, mounted again after a restore
};

std::vector<std::string> Machine::qemu_cmdline() const {
  if (qemu_pid_ > 0)
    if (auto line = read_cmdline(qemu_pid_)) return *line;
  return {};
}

std::vector<std::string> Machine::snapshots() const {
  std::vector<std::string> names;
  for (const auto& [name, state] : snapshots_) names.push_back(name);
  return names;
}

void Machine::remove_snapshots() {
  snapshots_.clear();
  if (options_.keep_vm_state) return;
  std::error_code ec;
  std::filesystem::remove_all(state_dir() / "snapshots", ec);
}

std::shared_ptr<Machine::SavedState> Machine::save_state(const std::filesystem::path& file, bool compress) {
  const std::string step = "cannot save a snapshot";
  QmpClient& qmp = running_qmp(step);
  // A snapshot holds memory and devices, not disks: restoring it next to a
  // disk written since would corrupt the guest's file systems.
  Json blocks = qmp.command("query-block");
  if (blocks.is_array())
    for (const auto& block : blocks.as_array()) {
      const Json* inserted = block.find("inserted");
      const Json* ro = inserted ? inserted->find("ro") : nullptr;
      if (ro && ro->is_bool() && !ro->as_bool())
        throw Error(fmt::format("{}: {}: the drive '{}' ({}) is writable, and a snapshot holds the guest's memory and "
                                "devices but not its disks; snapshots work with read-only drives only",
                                label(), step, block.string_at("device"), inserted->string_at("file")));
    }

  auto state = std::make_shared<SavedState>();
  state->file = file;
  state->compressed = compress;
  // QEMU refuses to migrate while a 9p share is mounted in the guest: the
  // driver's own shares are unmounted for the save and mounted again after.
  auto [status, mounts_text] = run_command("cat /proc/mounts", {.probe_until = Deadline::after(kGuestStepTimeout)});
  if (status != 0) throw Error(fmt::format("{}: {}: cannot read the guest's /proc/mounts", label(), step));
  auto mounts = parse_9p_mounts(mounts_text);
  auto exports = virtfs_exports(qemu_cmdline());
  for (const auto& mount : mounts) {
    auto it = exports.find(mount.tag);
    bool owned = it != exports.end() && (same_or_under(it->second, shared_dir()) || same_or_under(it->second, state_dir()));
    if (!owned)
      throw Error(fmt::format(
          "{}: {}: the guest has the 9p share '{}'{} mounted at {}, which is not one of the driver's own shares "
          "(shared, xchg), so the driver cannot release it, and QEMU cannot migrate a guest with a 9p share "
          "mounted. A NixOS VM that runs from the host's Nix store over 9p cannot be snapshotted: build it with "
          "virtualisation.useNixStoreImage = true (the store as a disk image), or unmount the share first",
          label(), step, mount.tag, it == exports.end() ? "" : " (host " + it->second + ")", mount.mount_point));
  }
  if (!mounts.empty()) {
    std::string command = "{ ";
    for (auto it = mounts.rbegin(); it != mounts.rend(); ++it) command += "umount " + shell_quote(it->mount_point) + " && ";
    command += "true; } 2>&1";
    auto [unmounted, output] = run_command(command, {.probe_until = Deadline::after(kGuestStepTimeout)});
    if (unmounted != 0) {
      // Mounts again what was unmounted before the one that failed.
      std::string again = "true";
      for (const auto& m : mounts)
        again += fmt::format("; grep -q {} /proc/mounts || mount -t 9p -o {} {} {}",
                             shell_quote(" " + m.mount_point + " 9p "), shell_quote(m.options), shell_quote(m.tag),
                             shell_quote(m.mount_point));
      run_command(again + " 2>&1", {.probe_until = Deadline::after(kGuestStepTimeout)});
      while (!output.empty() && output.back() == '\n') output.pop_back();
      throw Error(fmt::format("{}: {}: cannot unmount the driver's 9p shares in the guest (something uses them?): {}",
                              label(), step, output));
    }
    state->mounts = mounts;
  }
  SnapshotStats stats;
  try {
    stats = save_snapshot_file(qmp, file, compress ? SnapshotCompression::kZstd : SnapshotCompression::kNone,
                               Deadline::after(kMigrationTimeout));
  } catch (const Interrupted&) {
    throw;
  } catch (const std::exception& e) {
    // The guest goes on as it was; the error is the save's.
    try {
      qmp.command("cont");
      after_resume(*state);
    } catch (const std::exception&) {
    }
    throw Error(fmt::format("{}: {}: {}", label(), step, e.what()));
  }
  qmp.command("cont");
  after_resume(*state);
  log(fmt::format("saved the guest's state to {} ({:.1f} MB{} in {:.2f} seconds)", file.string(),
                  static_cast<double>(stats.bytes) / 1e6, compress ? ", zstd" : "", stats.seconds));
  return state;
}

void Machine::after_resume(const SavedState& state) {
  // The guest's clock stood still while it was saved (or since the save).
  std::string command = "{ " + set_clock_command();
  // (Mount points stay when a share is unmounted: no mkdir, no test.)
  for (const auto& mount : state.mounts)
    command += fmt::format("; mount -t 9p -o {} {} {}", shell_quote(mount.options), shell_quote(mount.tag),
                           shell_quote(mount.mount_point));
  command += "; } 2>&1";
  auto [status, output] = run_command(command, {.probe_until = Deadline::after(kGuestStepTimeout)});
  if (status != 0) {
    while (!output.empty() && output.back() == '\n') output.pop_back();
    throw Error(fmt::format("{}: after the snapshot: setting the guest's clock and mounting its 9p shares again "
                            "failed (status {}): {}",
                            label(), status, output));
  }
}

std::string Machine::restore_state(const SavedState& state) {
  // A QEMU waiting with -incoming defer (launched by the caller).
  try {
    auto t0 = Clock::now();
    QmpClient& qmp = running_qmp("cannot restore a snapshot");
    load_snapshot_file(qmp, state.file,
                       state.compressed ? SnapshotCompression::kZstd : SnapshotCompression::kNone,
                       Deadline::after(kMigrationTimeout));
    qmp.command("cont");
    if (recorder_) recorder_->attach();  // launch() left it detached
    auto t1 = Clock::now();
    // The same backdoor shell answers on the new connection, without a greeting.
    session().resync(random_nonce(), Deadline::after(kGuestStepTimeout));
    connected_ = true;
    auto t2 = Clock::now();
    after_resume(state);
    apply_guest_settings();
    auto t3 = Clock::now();
    auto s = [](auto d) { return std::chrono::duration<double>(d).count(); };
    return fmt::format("state loaded {:.2f} s, shell {:.2f} s, clock and shares {:.2f} s", s(t1 - t0), s(t2 - t1),
                       s(t3 - t2));
  } catch (...) {
    discard_qemu();
    throw;
  }
}

void Machine::save_snapshot(const std::string& name) {
  std::lock_guard lock(mutex_);
  static const std::regex pattern("[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}");
  if (!std::regex_match(name, pattern))
    throw Error(fmt::format("{}: {:?} is not a snapshot name (letters, digits, '_', '.', '-'; up to 100)", label(),
                            name));
  connect();
  auto nest = nested(fmt::format("saving snapshot '{}'", name));
  std::filesystem::path dir = state_dir() / "snapshots";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error(fmt::format("{}: cannot create {}: {}", label(), dir.string(), ec.message()));
  snapshots_[name] = save_state(dir / (name + ".state"), false);
}

void Machine::restore_snapshot(const std::string& name) {
  std::lock_guard lock(mutex_);
  auto it = snapshots_.find(name);
  if (it == snapshots_.end()) {
    auto names = snapshots();
    throw Error(fmt::format("{}: there is no snapshot named {:?} (saved in this run: {})", label(), name,
                            names.empty() ? "none" : fmt::format("{}", fmt::join(names, ", "))));
  }
  auto nest = nested(fmt::format("restoring snapshot '{}'", name));
  auto tic = Clock::now();
  auto state = it->second;
  discard_qemu();
  auto killed = Clock::now();
  launch({"-incoming", "defer"});
  auto launched = Clock::now();
  std::string phases = restore_state(*state);
  auto s = [](auto d) { return std::chrono::duration<double>(d).count(); };
  log(fmt::format("restored snapshot '{}' in {:.2f} seconds (old QEMU gone {:.2f} s, new QEMU up {:.2f} s, {})", name,
                  s(Clock::now() - tic), s(killed - tic), s(launched - killed), phases));
}

void Machine::start_through_boot_cache() {
  auto fall_back = [&](const std::string& why) {
    boot_cache_outcome_ = "uncacheable: " + why;
    log(fmt::format("boot cache: booting without it: {}", why));
    discard_qemu();
    launch({});
  };
  try {
    if (!boot_cache_) boot_cache_ = std::make_unique<BootCache>(options_.boot_cache);
  } catch (const Error& e) {
    return fall_back(e.what());
  }
  if (!zstd_available()) return fall_back("zstd, which compresses its entries, is not on PATH");
  auto tic = Clock::now();
  launch({"-incoming", "defer"});

  // The key: from QEMU's command line as the start command gave it.
  BootCache::Inputs inputs;
  inputs.start_words = options_.start_command->base_argv();
  inputs.qemu_argv = qemu_cmdline();
  if (recorder_) {
    // The video's monitor is not the machine's: one entry serves runs with and without --video.
    auto video = ScreenRecorder::qemu_args(recorder_->socket_path());
    auto at = std::search(inputs.qemu_argv.begin(), inputs.qemu_argv.end(), video.begin(), video.end());
    if (at != inputs.qemu_argv.end()) inputs.qemu_argv.erase(at, at + static_cast<std::ptrdiff_t>(video.size()));
  }
  std::error_code ec;
  inputs.qemu_binary = std::filesystem::read_symlink(fmt::format("/proc/{}/exe", qemu_pid_), ec);
  // The run's own directories, by role: another run's are others.
  const std::pair<std::filesystem::path, const char*> run_dirs[] = {
      {state_dir(), "@STATE_DIR@"}, {shared_dir(), "@SHARED_DIR@"}, {tmp_dir(), "@TMPDIR@"}};
  for (const auto& [dir, role] : run_dirs) {
    auto canonical = std::filesystem::weakly_canonical(dir, ec);
    inputs.run_paths.emplace_back(dir.string(), role);
    if (!ec && canonical != dir) inputs.run_paths.emplace_back(canonical.string(), role);
  }
  std::sort(inputs.run_paths.begin(), inputs.run_paths.end(),
            [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  std::string why;
  std::optional<BootCache::Key> key;
  if (inputs.qemu_argv.empty() || inputs.qemu_binary.empty() || inputs.qemu_binary.string().ends_with(" (deleted)"))
    why = "cannot read QEMU's command line or binary from /proc";
  else
    key = boot_cache_->key(inputs, why);
  if (key) {
    Json blocks = running_qmp("boot cache").command("query-block");
    if (blocks.is_array())
      for (const auto& block : blocks.as_array()) {
        const Json* inserted = block.find("inserted");
        const Json* ro = inserted ? inserted->find("ro") : nullptr;
        if (ro && ro->is_bool() && !ro->as_bool()) {
          why = fmt::format("the drive '{}' is writable, and a snapshot does not hold disks", block.string_at("device"));
          key.reset();
          break;
        }
      }
  }
  if (!key) return fall_back(why);

  if (auto meta = boot_cache_->lookup(*key)) {
    SavedState state;
    state.file = boot_cache_->state_file(*key);
    state.compressed = true;
    if (const Json* mounts = meta->find("mounts"); mounts && mounts->is_array())
      for (const auto& m : mounts->as_array())
        state.mounts.push_back({m.string_at("tag"), m.string_at("mount_point"), m.string_at("options")});
    try {
      restore_state(state);  // discards QEMU when it fails
      boot_cache_outcome_ = "hit";
      log(fmt::format("boot cache hit: restored {} in {:.2f} seconds", state.file.string(),
                      std::chrono::duration<double>(Clock::now() - tic).count()));
      return;
    } catch (const Interrupted&) {
      throw;
    } catch (const std::exception& e) {
      log(fmt::format("boot cache: the entry {} is unusable, discarding it and booting: {}", state.file.string(),
                      e.what()));
      boot_cache_->discard(*key);
    }
  }
  discard_qemu();
  boot_cache_outcome_ = "miss";
  log(fmt::format("boot cache miss ({}): booting; the boot is saved once the backdoor shell connects", key->hex.substr(0, 16)));
  launch({});
  pending_cache_key_ = key;
}

void Machine::save_boot_to_cache() {
  BootCache::Key key = *pending_cache_key_;
  pending_cache_key_.reset();
  auto nest = nested("saving the boot in the boot cache");
  try {
    auto state = save_state(boot_cache_->state_file(key), true);
    Json::Array mounts;
    for (const auto& m : state->mounts)
      mounts.emplace_back(Json::Object{{"tag", m.tag}, {"mount_point", m.mount_point}, {"options", m.options}});
    boot_cache_->write_meta(key, Json::Object{{"machine", name()}, {"mounts", Json(std::move(mounts))}});
  } catch (const Interrupted&) {
    throw;
  } catch (const std::exception& e) {
    boot_cache_outcome_ = std::string("uncacheable: ") + e.what();
    log(fmt::format("boot cache: not saving this boot: {}", e.what()));
  }
}

}  // namespace td
