// The processes of a systemd-nspawn container as the host sees them: the
// container's init (PID 1 of its own PID namespace) somewhere below the
// start script, whose namespaces a root shell then enters
// (Process::Options::enter_namespaces_of). Read from /proc; no container
// manager (machined) is needed, as none runs in a build sandbox.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace td {

// The container's init among `ancestor`'s descendants: the shallowest
// process that is PID 1 of a PID namespace nested in ours and has exec'd
// (its name differs from its parent's, systemd-nspawn's). nullopt while
// there is none (the container is still being set up, or is gone).
std::optional<pid_t> find_container_init(pid_t ancestor);

// The direct children of `pid` (all its threads'), from /proc.
std::vector<pid_t> child_processes(pid_t pid);

}  // namespace td
