// Snapshots of a running QEMU guest: QEMU's migration stream written to a
// file and loaded back into a QEMU started with `-incoming defer`. The
// stream travels through a descriptor handed to QEMU over QMP (`getfd`,
// then the URI `fd:NAME`), so no host shell ever sees a path; with zstd
// compression the descriptor is a pipe to or from a `zstd` process.
//
// Also the guest-side facts a save needs, as pure functions: which 9p
// shares the guest has mounted (/proc/mounts) and which of them QEMU
// exports from the driver's own directories (QEMU's command line), since
// QEMU refuses to migrate while a 9p share is mounted.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "test_driver/deadline.h"

namespace td {

class QmpClient;

enum class SnapshotCompression { kNone, kZstd };

// One 9p file system mounted in the guest, from /proc/mounts.
struct NinePMount {
  std::string tag;          // the mount source: QEMU's mount_tag
  std::string mount_point;  // octal escapes (\040) decoded
  std::string options;      // as /proc/mounts shows them
};

// The 9p mounts in the text of /proc/mounts, in mount order.
std::vector<NinePMount> parse_9p_mounts(std::string_view proc_mounts);

// QEMU's 9p exports on its command line: mount tag -> host path, from
// `-virtfs local,path=P,mount_tag=T` and `-fsdev local,id=I,path=P` with
// `-device virtio-9p-…,fsdev=I,mount_tag=T`.
std::map<std::string, std::string> virtfs_exports(const std::vector<std::string>& qemu_argv);

// A process's command line (/proc/PID/cmdline), nullopt when unreadable.
std::optional<std::vector<std::string>> read_cmdline(pid_t pid);

// Whether `zstd` is on PATH.
bool zstd_available();

struct SnapshotStats {
  std::uintmax_t bytes = 0;  // the file's size
  double seconds = 0;        // from `stop` to the file in place
};

// Stops the guest (QMP `stop`) and streams its state into `file`, written
// under a temporary name in the same directory and renamed into place, so
// a reader never sees half a file. Raises the migration bandwidth limit
// first. The guest stays stopped (`cont` resumes it). Throws td::Error
// naming the step and QEMU's reason when the migration fails.
SnapshotStats save_snapshot_file(QmpClient& qmp, const std::filesystem::path& file, SnapshotCompression compression,
                                 Deadline deadline);

// Loads `file` into a QEMU waiting with `-incoming defer`; returns once the
// state is loaded (the guest is paused, as it was saved) and, for zstd, the
// decompressor has confirmed the file's checksum. Throws td::Error naming
// the file when QEMU or zstd rejects it.
void load_snapshot_file(QmpClient& qmp, const std::filesystem::path& file, SnapshotCompression compression,
                        Deadline deadline);

// The guest command that sets its clock from the host's (now, UTC).
std::string set_clock_command();

}  // namespace td
