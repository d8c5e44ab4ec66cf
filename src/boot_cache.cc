#include "test_driver/boot_cache.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>

#include "test_driver/errors.h"

namespace td {
namespace {

// Bumped when what a key covers or an entry holds changes.
constexpr const char* kFormat = "td-boot-cache 1";
// A start script larger than this is not scanned for the files it names
// (it is hashed whole all the same); it is no script then.
constexpr size_t kScanLimit = 4 << 20;

struct Sha256 {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx{EVP_MD_CTX_new(), &EVP_MD_CTX_free};
  Sha256() { EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr); }
  void add(const void* data, size_t n) { EVP_DigestUpdate(ctx.get(), data, n); }
  std::string hex() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(ctx.get(), digest, &n);
    std::string out;
    for (unsigned int i = 0; i < n; ++i) out += fmt::format("{:02x}", digest[i]);
    return out;
  }
};

bool read_whole(const std::filesystem::path& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::stringstream text;
  text << in.rdbuf();
  out = text.str();
  return !in.bad();
}

void write_atomically(const std::filesystem::path& path, const std::string& content) {
  std::filesystem::path temp = path;
  temp += fmt::format(".tmp-{}-{}", ::getpid(), std::chrono::steady_clock::now().time_since_epoch().count());
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) throw Error(fmt::format("boot cache: cannot create {}: {}", temp.string(), std::strerror(errno)));
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int error = errno;
      ::close(fd);
      ::unlink(temp.c_str());
      throw Error(fmt::format("boot cache: cannot write {}: {}", temp.string(), std::strerror(error)));
    }
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  std::error_code ec;
  std::filesystem::rename(temp, path, ec);
  if (ec) {
    ::unlink(temp.c_str());
    throw Error(fmt::format("boot cache: cannot rename {} to {}: {}", temp.string(), path.string(), ec.message()));
  }
}

// Replaces the run's own paths in `text` by their names.
std::string with_run_paths(std::string text, const BootCache::Inputs& inputs) {
  for (const auto& [path, name] : inputs.run_paths) {
    if (path.empty()) continue;
    for (size_t at = text.find(path); at != std::string::npos; at = text.find(path, at + name.size()))
      text.replace(at, path.size(), name);
  }
  return text;
}

bool in_run_paths(const std::string& path, const BootCache::Inputs& inputs) {
  for (const auto& [run_path, name] : inputs.run_paths)
    if (!run_path.empty() && (path == run_path || path.starts_with(run_path + "/"))) return true;
  return false;
}

// Where a path may end inside a command line or a script.
bool ends_path(char c) {
  return std::isspace(static_cast<unsigned char>(c)) || std::strchr("'\"`;|&<>(){}$,=:", c) != nullptr || c == '\0';
}

}  // namespace

std::string sha256_hex(std::string_view data) {
  Sha256 sha;
  sha.add(data.data(), data.size());
  return sha.hex();
}

BootCache::BootCache(std::filesystem::path dir) : dir_(std::filesystem::absolute(dir).lexically_normal()) {
  std::error_code ec;
  std::filesystem::create_directories(dir_ / "files", ec);
  if (ec || !std::filesystem::is_directory(dir_))
    throw Error(fmt::format("cannot use the boot cache directory {}: {}", dir_.string(),
                            ec ? ec.message() : "not a directory"));
}

std::filesystem::path BootCache::state_file(const Key& key) const { return dir_ / (key.hex + ".state.zst"); }
std::filesystem::path BootCache::meta_file(const Key& key) const { return dir_ / (key.hex + ".meta"); }

std::optional<std::string> BootCache::file_hash(const std::filesystem::path& path, std::string& why_not) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    why_not = fmt::format("cannot stat {}: {}", path.string(), std::strerror(errno));
    return std::nullopt;
  }
  // Remembered by identity: a file replaced or written to since has a new
  // inode or change time.
  std::string identity = fmt::format("{}\n{} {} {} {}.{} {}.{}", path.string(), st.st_dev, st.st_ino, st.st_size,
                                     st.st_mtim.tv_sec, st.st_mtim.tv_nsec, st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
  std::filesystem::path memo = dir_ / "files" / sha256_hex(identity);
  std::string remembered;
  if (read_whole(memo, remembered) && remembered.size() == 64) return remembered;

  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    why_not = fmt::format("cannot read {}: {}", path.string(), std::strerror(errno));
    return std::nullopt;
  }
  Sha256 sha;
  std::vector<char> buffer(1 << 20);
  for (;;) {
    ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      why_not = fmt::format("cannot read {}: {}", path.string(), std::strerror(errno));
      ::close(fd);
      return std::nullopt;
    }
    if (n == 0) break;
    sha.add(buffer.data(), static_cast<size_t>(n));
  }
  struct stat after;
  bool changed = ::fstat(fd, &after) != 0 || after.st_size != st.st_size || after.st_mtim.tv_sec != st.st_mtim.tv_sec ||
                 after.st_mtim.tv_nsec != st.st_mtim.tv_nsec || after.st_ino != st.st_ino;
  ::close(fd);
  if (changed) {
    why_not = fmt::format("{} changed while it was read", path.string());
    return std::nullopt;
  }
  std::string hash = sha.hex();
  try {
    write_atomically(memo, hash);
  } catch (const Error&) {
    // Only a lost shortcut.
  }
  return hash;
}

bool BootCache::add_named_files(std::string_view text, const Inputs& inputs, std::string& out, std::string& why_not) {
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '/' || (i > 0 && !ends_path(text[i - 1]))) continue;
    size_t end = i;
    while (end < text.size() && !ends_path(text[end])) ++end;
    std::string path(text.substr(i, end - i));
    i = end;
    if (path.size() < 2 || in_run_paths(path, inputs)) continue;
    std::error_code ec;
    auto status = std::filesystem::status(path, ec);
    if (ec || !std::filesystem::exists(status)) continue;
    if (std::filesystem::is_regular_file(status)) {
      auto hash = file_hash(path, why_not);
      if (!hash) return false;
      out += fmt::format("file {} {}\n", path, *hash);
    } else {
      out += fmt::format("path {} {}\n", path, static_cast<int>(status.type()));
    }
  }
  return true;
}

std::optional<BootCache::Key> BootCache::key(const Inputs& inputs, std::string& why_not) {
  std::string text = std::string(kFormat) + "\n";
  // The start command: a script's content and what it names; the words of
  // any other command (they are on QEMU's command line too).
  for (const auto& word : inputs.start_words) {
    std::error_code ec;
    if (word.starts_with("/") && std::filesystem::is_regular_file(word, ec)) {
      std::string content;
      if (!read_whole(word, content)) {
        why_not = fmt::format("cannot read the start script {}", word);
        return std::nullopt;
      }
      text += fmt::format("start-script {}\n", sha256_hex(content));
      if (content.size() <= kScanLimit && !add_named_files(content, inputs, text, why_not)) return std::nullopt;
    } else {
      text += "start-word " + with_run_paths(word, inputs) + "\n";
    }
  }
  auto binary = file_hash(inputs.qemu_binary, why_not);
  if (!binary) return std::nullopt;
  text += fmt::format("qemu-binary {}\n", *binary);
  for (const auto& arg : inputs.qemu_argv) {
    std::string shown = with_run_paths(arg, inputs);
    for (char& c : shown)
      if (c == '\n') c = ' ';
    text += "arg " + shown + "\n";
  }
  for (const auto& arg : inputs.qemu_argv)
    if (!add_named_files(arg, inputs, text, why_not)) return std::nullopt;
  return Key{sha256_hex(text), text};
}

std::optional<Json> BootCache::lookup(const Key& key) const {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(state_file(key), ec)) return std::nullopt;
  std::string text;
  if (!read_whole(meta_file(key), text)) return std::nullopt;
  try {
    Json meta = Json::parse(text);
    if (meta.string_at("key") != key.hex) return std::nullopt;
    return meta;
  } catch (const Error&) {
    return std::nullopt;
  }
}

void BootCache::write_meta(const Key& key, const Json& extra) {
  Json::Object meta{{"format", kFormat}, {"key", key.hex}, {"inputs", key.text}};
  if (extra.is_object())
    for (const auto& member : extra.as_object()) meta.push_back(member);
  write_atomically(meta_file(key), Json(std::move(meta)).dump() + "\n");
}

void BootCache::discard(const Key& key) {
  std::error_code ec;
  std::filesystem::remove(state_file(key), ec);
  std::filesystem::remove(meta_file(key), ec);
}

}  // namespace td
