// The lock a machine (or a VLAN) holds on its state directory for its life:
// flock(2) on a file in it that holds the driver's pid, so that two drivers
// with the same TMPDIR and machine name (or VLAN number) never delete each
// other's sockets or talk to each other's QEMU or vde_switch. The
// directory's contents are wiped around the file, never the file itself.
// Also how a machine makes its private directories.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

namespace td {

inline constexpr const char* kStateDirLockFile = ".driver-lock";

// Locks `dir` (creating the lock file); the lock is shared by the machines
// of this process that use the directory (a script may make a second
// Machine of the same name) and released when the last handle goes. Throws
// td::Error naming `what` ("VM state directory"), the directory and the
// other driver's pid when another process holds it.
std::shared_ptr<void> lock_state_dir(const std::filesystem::path& dir, const std::string& what);

// Deletes everything in the locked state directory `dir` but the lock file;
// throws td::Error naming `what` ("VM state directory") and the reason.
void wipe_state_dir(const std::filesystem::path& dir, const std::string& what);

// Creates `path` (and its parents) with mode 0700; throws td::Error naming
// `what` ("VM state directory") and the reason when it cannot.
void make_private_dir(const std::filesystem::path& path, const std::string& what);

}  // namespace td
