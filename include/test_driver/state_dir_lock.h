// The lock a machine holds on its state directory for its life: flock(2)
// on a file in it that holds the driver's pid, so that two drivers with the
// same TMPDIR and machine name never delete each other's sockets or talk to
// each other's QEMU. The directory's contents are wiped around the file,
// never the file itself.
#pragma once

#include <filesystem>
#include <memory>

namespace td {

inline constexpr const char* kStateDirLockFile = ".driver-lock";

// Locks `dir` (creating the lock file); the lock is shared by the machines
// of this process that use the directory (a script may make a second
// Machine of the same name) and released when the last handle goes. Throws
// td::Error naming the directory and the other driver's pid when another
// process holds it.
std::shared_ptr<void> lock_state_dir(const std::filesystem::path& dir);

}  // namespace td
