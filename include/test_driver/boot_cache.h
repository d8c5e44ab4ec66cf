// The boot cache (--boot-cache DIR, $TEST_DRIVER_BOOT_CACHE): for each
// machine, a snapshot taken right after its backdoor shell first connected,
// found again by a key over everything that determines that state: the
// start command's words and, for a start script, its content and every file
// it names that exists; QEMU's own command line as QEMU got it
// (/proc/PID/cmdline, with the run's own directories replaced by names);
// the content of every file that command line names; the QEMU binary.
// A key that cannot be computed safely (a named file that cannot be read)
// is no key: a miss, never a wrong restore.
//
// An entry is two files, `KEY.meta` (JSON: what was hashed, the 9p mounts
// to restore) and `KEY.state.zst` (QEMU's migration stream, zstd with its
// checksum), each written under a temporary name and renamed, so drivers
// sharing a cache never see half an entry. File content hashes are
// remembered in `files/` by path, inode, size and change times.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "test_driver/json.h"

namespace td {

// SHA-256 of bytes, as 64 hex digits.
std::string sha256_hex(std::string_view data);

class BootCache {
 public:
  struct Inputs {
    std::vector<std::string> start_words;  // the start command (StartCommand::base_argv)
    std::vector<std::string> qemu_argv;    // QEMU's command line, as it runs
    std::filesystem::path qemu_binary;     // /proc/PID/exe
    // Paths of this run (state, shared and temporary directories) and the
    // names they are hashed as; longest first.
    std::vector<std::pair<std::string, std::string>> run_paths;
  };
  struct Key {
    std::string hex;   // the entry's name
    std::string text;  // what was hashed, one item per line
  };

  // Creates the directory if need be; throws td::Error when it cannot.
  explicit BootCache(std::filesystem::path dir);
  const std::filesystem::path& dir() const { return dir_; }

  // The key, or nullopt and `why_not` when it cannot be computed safely.
  std::optional<Key> key(const Inputs& inputs, std::string& why_not);

  std::filesystem::path state_file(const Key& key) const;
  std::filesystem::path meta_file(const Key& key) const;
  // The entry's metadata when both of its files are there and the metadata
  // is for this key; nullopt otherwise (a miss).
  std::optional<Json> lookup(const Key& key) const;
  // Writes the metadata (tmp + rename); the state file is written by
  // save_snapshot_file into state_file(key), which renames it into place.
  void write_meta(const Key& key, const Json& extra);
  // Removes an entry found unusable.
  void discard(const Key& key);

 private:
  // The content hash of a regular file (remembered); nullopt when unreadable.
  std::optional<std::string> file_hash(const std::filesystem::path& path, std::string& why_not);
  // Adds "file PATH HASH" / "dir PATH" lines for the absolute paths in `text`
  // that exist (outside the run's own directories); false when one cannot be read.
  bool add_named_files(std::string_view text, const Inputs& inputs, std::string& out, std::string& why_not);

  std::filesystem::path dir_;
};

}  // namespace td
