// BaseMachine: files between host and guest, through the shell or the 9p
// shared directory (host shared_dir = guest /tmp/shared).
#include <fmt/format.h>
#include <stdlib.h>

#include <fstream>
#include <sstream>

#include "test_driver/base64.h"
#include "test_driver/errors.h"
#include "test_driver/base_machine.h"
#include "test_driver/host_files.h"
#include "test_driver/retry.h"
#include "test_driver/shell_words.h"

namespace td {
namespace {

// A fresh directory under the shared directory, removed again on scope exit.
class SharedTempDir {
 public:
  explicit SharedTempDir(const std::filesystem::path& shared_dir) {
    std::string pattern = (shared_dir / "tmpXXXXXX").string();
    if (!::mkdtemp(pattern.data()))
      throw Error(fmt::format("cannot create a temporary directory in {}: {}", shared_dir.string(), std::strerror(errno)));
    host_ = pattern;
  }
  ~SharedTempDir() {
    std::error_code ec;
    std::filesystem::remove_all(host_, ec);
  }
  const std::filesystem::path& host() const { return host_; }
  std::string guest() const { return "/tmp/shared/" + host_.filename().string(); }

 private:
  std::filesystem::path host_;
};

}  // namespace

void BaseMachine::wait_for_file(const std::string& filename, Duration timeout) {
  auto nest = nested(fmt::format("waiting for file ‘{}‘", filename));
  auto start = Clock::now();
  poll_in_guest("test -e " + shell_quote(filename), start, Deadline::after(timeout), timeout);
}

void BaseMachine::copy_from_host_via_shell(const std::filesystem::path& source, const std::string& target) {
  std::ifstream in(source, std::ios::binary);
  if (!in) throw Error(fmt::format("cannot read {}: {}", source.string(), std::strerror(errno)));
  std::stringstream content;
  content << in.rdbuf();
  // The content follows the command on the shell's input, read by head at
  // full speed (the reference put it on the command line, which bash reads
  // one byte at a time: seconds per megabyte under TCG).
  std::string encoded = base64_encode(content.str());
  auto nest = nested(fmt::format("copying {} ({} bytes) to {} through the shell", source.string(),
                                 content.str().size(), target));
  std::string command = fmt::format("mkdir -p \"$(dirname {0})\" && head -c {1} | base64 -d > {0}", shell_quote(target),
                                    encoded.size());
  auto [status, out] = run_command(command, {.input = encoded});
  if (status != 0)
    throw RequestedAssertionFailed(fmt::format("copying {} to {} failed (exit code {}): {}", source.string(), target,
                                               status, out));
}

void BaseMachine::copy_from_host(const std::filesystem::path& source, const std::string& target) {
  if (!std::filesystem::exists(source)) throw Error(fmt::format("cannot copy {}: it does not exist", source.string()));
  SharedTempDir shared(shared_dir());
  std::string name = std::filesystem::path(source).filename().string();
  std::string guest_intermediate = shared.guest() + "/" + name;
  succeed({shell_join({"mkdir", "-p", shared.guest()})});
  copy_host_tree(source, shared.host() / name);
  succeed({shell_join({"mkdir", "-p", std::filesystem::path(target).parent_path().string()})});
  succeed({shell_join({"cp", "-r", guest_intermediate, target})});
}

void BaseMachine::copy_from_vm(const std::string& source, const std::string& target_dir) {
  SharedTempDir shared(shared_dir());
  std::string name = std::filesystem::path(source).filename().string();
  succeed({shell_join({"mkdir", "-p", shared.guest()})});
  succeed({shell_join({"cp", "-r", source, shared.guest() + "/" + name})});
  std::filesystem::path target = out_dir() / target_dir / name;
  std::error_code ec;
  std::filesystem::create_directories(target.parent_path(), ec);
  if (ec) throw Error(fmt::format("cannot create {}: {}", target.parent_path().string(), ec.message()));
  copy_host_tree(shared.host() / name, target);
}

}  // namespace td
