// Files the driver writes on the host (copies out of a guest, screenshots)
// with errors that name the file and the real reason: libstdc++'s
// std::filesystem::copy reports a full disk (a short sendfile) as
// "Input/output error", and a tool that dies writing a full disk says
// only "Write Error".
#pragma once

#include <filesystem>
#include <string_view>

namespace td {

// Writes `content` to `path` (created with mode 0644 or truncated). Throws
// td::Error "cannot write PATH: REASON" (e.g. "No space left on device").
void write_host_file(const std::filesystem::path& path, std::string_view content);

// Copies the file, symlink or directory tree `from` to `to`, overwriting
// what is there, keeping modes and copying symlinks as symlinks. Throws
// td::Error "cannot copy FROM to TO: REASON", naming the file that failed.
void copy_host_tree(const std::filesystem::path& from, const std::filesystem::path& to);

}  // namespace td
