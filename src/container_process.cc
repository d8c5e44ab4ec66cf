// The container's init below a start script.
#include "test_driver/container_process.h"

#include <fmt/format.h>
#include <unistd.h>

#include <deque>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace td {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// "NSpid:\t4711\t1" in /proc/PID/status: the pid in each nested namespace.
std::vector<long> namespace_pids(pid_t pid) {
  std::istringstream status(read_file(fmt::format("/proc/{}/status", pid)));
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("NSpid:", 0) != 0) continue;
    std::istringstream fields(line.substr(6));
    std::vector<long> pids;
    long value;
    while (fields >> value) pids.push_back(value);
    return pids;
  }
  return {};
}

std::string process_name(pid_t pid) {
  std::string name = read_file(fmt::format("/proc/{}/comm", pid));
  if (!name.empty() && name.back() == '\n') name.pop_back();
  return name;
}

}  // namespace

std::vector<pid_t> child_processes(pid_t pid) {
  std::vector<pid_t> children;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(fmt::format("/proc/{}/task", pid), ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    std::istringstream list(read_file((it->path() / "children").string()));
    pid_t child;
    while (list >> child) children.push_back(child);
  }
  return children;
}

std::optional<pid_t> find_container_init(pid_t ancestor) {
  const size_t our_depth = namespace_pids(::getpid()).size();
  // Breadth first: the shallowest init is the container's, not one of a
  // container inside it.
  std::deque<std::pair<pid_t, std::string>> queue{{ancestor, process_name(ancestor)}};
  while (!queue.empty()) {
    auto [pid, parent_name] = queue.front();
    queue.pop_front();
    for (pid_t child : child_processes(pid)) {
      std::vector<long> pids = namespace_pids(child);
      std::string name = process_name(child);
      if (pids.size() > our_depth && pids.back() == 1) {
        // Until it execs the container's init it is a copy of systemd-nspawn,
        // still setting up the root it will run in.
        if (name != parent_name) return child;
        continue;
      }
      queue.emplace_back(child, name);
    }
  }
  return std::nullopt;
}

}  // namespace td
