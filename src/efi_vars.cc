#include "test_driver/efi_vars.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <utility>

#include "test_driver/host_files.h"

namespace td::efi {
namespace {

// edk2's GUIDs, as stored.
constexpr Guid kSystemNvDataFvGuid = {0x8d, 0x2b, 0xf1, 0xff, 0x96, 0x76, 0x8b, 0x4c,
                                      0xa9, 0x85, 0x27, 0x47, 0x07, 0x5b, 0x4f, 0x50};
constexpr Guid kAuthenticatedVariableGuid = {0x78, 0x2c, 0xf3, 0xaa, 0x7b, 0x94, 0x9a, 0x43,
                                             0xa1, 0x80, 0x2e, 0x14, 0x4e, 0xc3, 0x77, 0x92};
constexpr Guid kVariableGuid = {0x16, 0x36, 0xcf, 0xdd, 0x75, 0x32, 0x64, 0x41,
                                0x98, 0xb6, 0xfe, 0x85, 0x70, 0x7f, 0xfe, 0x7d};
// EFI_FAULT_TOLERANT_WORKING_BLOCK_HEADER of an empty working block: the
// signature gEdkiiWorkingBlockSignatureGuid, its CRC32, valid, and a write
// queue of 0xFE0 bytes (the 4 KiB block less this header).
constexpr std::array<uint8_t, 32> kEmptyWorkingBlockHeader = {
    0x2b, 0x29, 0x58, 0x9e, 0x68, 0x7c, 0x7d, 0x49, 0xa0, 0xce, 0x65, 0x00, 0xfd, 0x9f, 0x1b, 0x95,
    0x2c, 0xaf, 0x2c, 0x64, 0xfe, 0xff, 0xff, 0xff, 0xe0, 0x0f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};

constexpr size_t kFvSignatureOffset = 40;
constexpr size_t kFvMinHeader = 56;
constexpr size_t kStoreHeaderSize = 28;    // VARIABLE_STORE_HEADER
constexpr size_t kRecordHeaderSize = 60;   // AUTHENTICATED_VARIABLE_HEADER
constexpr uint16_t kStartId = 0x55AA;
constexpr uint8_t kStoreFormatted = 0x5A;
constexpr size_t kBlock = 0x1000;
// The 4 MB build's layout (OvmfPkg/VarStore.fdf.inc): variable store, event
// log, FTW working block, FTW spare area.
constexpr size_t kStore4mSize = 0x40000;
constexpr size_t kWorkingBlock4mOffset = 0x41000;
constexpr size_t kImage4mSize = 0x84000;

uint16_t le16(const std::vector<uint8_t>& b, size_t at) { return uint16_t(b[at] | b[at + 1] << 8); }
uint32_t le32(const std::vector<uint8_t>& b, size_t at) {
  return uint32_t(b[at]) | uint32_t(b[at + 1]) << 8 | uint32_t(b[at + 2]) << 16 | uint32_t(b[at + 3]) << 24;
}
uint64_t le64(const std::vector<uint8_t>& b, size_t at) { return le32(b, at) | uint64_t(le32(b, at + 4)) << 32; }
void put16(std::vector<uint8_t>& b, size_t at, uint16_t v) {
  for (int i = 0; i < 2; ++i) b[at + i] = uint8_t(v >> (8 * i));
}
void put32(std::vector<uint8_t>& b, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) b[at + i] = uint8_t(v >> (8 * i));
}
void put64(std::vector<uint8_t>& b, size_t at, uint64_t v) {
  for (int i = 0; i < 8; ++i) b[at + i] = uint8_t(v >> (8 * i));
}
bool guid_at(const std::vector<uint8_t>& b, size_t at, const Guid& g) {
  return std::equal(g.begin(), g.end(), b.begin() + static_cast<std::ptrdiff_t>(at));
}
size_t align4(size_t n) { return (n + 3) & ~size_t{3}; }

// Where the variable store is in an image: its records' region.
struct StoreRegion {
  size_t header;  // the VARIABLE_STORE_HEADER
  size_t begin;   // the first record
  size_t end;     // one past the store
  size_t fv_end;  // one past the firmware volume
};

StoreRegion locate_store(const std::vector<uint8_t>& image) {
  if (image.size() < kFvMinHeader || std::memcmp(&image[kFvSignatureOffset], "_FVH", 4) != 0)
    throw EfiStoreError("not an OVMF variable store: no firmware volume header (_FVH) at its start");
  if (!guid_at(image, 16, kSystemNvDataFvGuid))
    throw EfiStoreError("not an OVMF variable store: the firmware volume is not an NV data volume");
  uint64_t fv_length = le64(image, 32);
  size_t header_length = le16(image, 48);
  if (fv_length > image.size() || header_length < kFvMinHeader || header_length + kStoreHeaderSize > fv_length)
    throw EfiStoreError(fmt::format("not an OVMF variable store: a firmware volume of {} bytes with a {}-byte header "
                                    "in a file of {} bytes",
                                    fv_length, header_length, image.size()));
  StoreRegion r{header_length, header_length + kStoreHeaderSize, 0, static_cast<size_t>(fv_length)};
  if (guid_at(image, r.header, kVariableGuid))
    throw EfiStoreError("the variable store is not authenticated (gEfiVariableGuid): only OVMF's authenticated "
                        "store is supported");
  if (!guid_at(image, r.header, kAuthenticatedVariableGuid))
    throw EfiStoreError(fmt::format("no variable store header at offset {:#x}", r.header));
  uint32_t size = le32(image, r.header + 16);
  if (size < kStoreHeaderSize || size > fv_length - r.header)
    throw EfiStoreError(fmt::format("the variable store's size {:#x} does not fit its firmware volume", size));
  if (image[r.header + 20] != kStoreFormatted)
    throw EfiStoreError(fmt::format("the variable store is not formatted (format byte {:#04x})", image[r.header + 20]));
  r.end = r.header + size;
  return r;
}

std::vector<uint8_t> encode(const Variable& v) {
  size_t name_size = (v.name.size() + 1) * 2;
  std::vector<uint8_t> out(kRecordHeaderSize + name_size + v.data.size());
  put16(out, 0, kStartId);
  out[2] = v.state;
  out[3] = 0;
  put32(out, 4, v.attributes);
  put64(out, 8, v.monotonic_count);
  std::copy(v.timestamp.begin(), v.timestamp.end(), out.begin() + 16);
  put32(out, 32, v.pubkey_index);
  put32(out, 36, static_cast<uint32_t>(name_size));
  put32(out, 40, static_cast<uint32_t>(v.data.size()));
  std::copy(v.vendor.begin(), v.vendor.end(), out.begin() + 44);
  for (size_t i = 0; i < v.name.size(); ++i) put16(out, kRecordHeaderSize + 2 * i, v.name[i]);
  put16(out, kRecordHeaderSize + 2 * v.name.size(), 0);
  std::copy(v.data.begin(), v.data.end(), out.begin() + static_cast<std::ptrdiff_t>(kRecordHeaderSize + name_size));
  return out;
}

}  // namespace

bool Variable::live() const { return state == kVarAdded || state == (kVarAdded & kVarInDeletedTransition); }

std::vector<Variable> parse_store(const std::vector<uint8_t>& image) {
  StoreRegion r = locate_store(image);
  std::vector<Variable> records;
  size_t at = r.begin;
  while (at + kRecordHeaderSize <= r.end && le16(image, at) == kStartId) {
    Variable v;
    v.state = image[at + 2];
    v.attributes = le32(image, at + 4);
    v.monotonic_count = le64(image, at + 8);
    std::copy_n(image.begin() + static_cast<std::ptrdiff_t>(at + 16), 16, v.timestamp.begin());
    v.pubkey_index = le32(image, at + 32);
    uint32_t name_size = le32(image, at + 36);
    uint32_t data_size = le32(image, at + 40);
    std::copy_n(image.begin() + static_cast<std::ptrdiff_t>(at + 44), 16, v.vendor.begin());
    size_t name_at = at + kRecordHeaderSize;
    if (name_size > r.end - name_at || data_size > r.end - name_at - name_size)
      throw EfiStoreError(fmt::format("the variable record at offset {:#x} is cut off: a {}-byte name and {} bytes "
                                      "of data do not fit the store, which ends at {:#x}",
                                      at, name_size, data_size, r.end));
    if (name_size % 2 != 0)
      throw EfiStoreError(fmt::format("the variable record at offset {:#x} has a name of an odd size ({} bytes)", at,
                                      name_size));
    for (size_t i = 0; i < name_size / 2; ++i) {
      char16_t c = le16(image, name_at + 2 * i);
      if (c == 0) break;
      v.name.push_back(c);
    }
    size_t data_at = name_at + name_size;
    v.data.assign(image.begin() + static_cast<std::ptrdiff_t>(data_at),
                  image.begin() + static_cast<std::ptrdiff_t>(data_at + data_size));
    records.push_back(std::move(v));
    at = align4(data_at + data_size);
  }
  return records;
}

std::vector<Variable> live_variables(const std::vector<Variable>& records) {
  std::map<std::pair<Guid, std::u16string>, size_t> last;
  for (size_t i = 0; i < records.size(); ++i)
    if (records[i].live()) last[{records[i].vendor, records[i].name}] = i;
  std::vector<Variable> out;
  for (size_t i = 0; i < records.size(); ++i) {
    auto it = last.find({records[i].vendor, records[i].name});
    if (it != last.end() && it->second == i) out.push_back(records[i]);
  }
  return out;
}

std::vector<uint8_t> empty_store() {
  std::vector<uint8_t> image(kImage4mSize, 0xFF);
  // EFI_FIRMWARE_VOLUME_HEADER with its one block map entry and terminator.
  std::fill_n(image.begin(), 16, 0);
  std::copy(kSystemNvDataFvGuid.begin(), kSystemNvDataFvGuid.end(), image.begin() + 16);
  put64(image, 32, kImage4mSize);
  std::memcpy(&image[kFvSignatureOffset], "_FVH", 4);
  put32(image, 44, 0x0004FEFF);  // EFI_FVB2 attributes as OVMF's
  put16(image, 48, 0x48);
  put16(image, 52, 0);  // no extended header
  image[54] = 0;
  image[55] = 2;  // revision
  put32(image, 56, kImage4mSize / kBlock);
  put32(image, 60, kBlock);
  put64(image, 64, 0);
  put16(image, 50, 0);  // the checksum: the header's 16-bit words sum to 0
  uint16_t sum = 0;
  for (size_t i = 0; i < 0x48; i += 2) sum = uint16_t(sum + le16(image, i));
  put16(image, 50, uint16_t(0x10000 - sum));
  // VARIABLE_STORE_HEADER: authenticated, formatted, healthy.
  std::copy(kAuthenticatedVariableGuid.begin(), kAuthenticatedVariableGuid.end(), image.begin() + 0x48);
  put32(image, 0x48 + 16, static_cast<uint32_t>(kStore4mSize - 0x48));
  image[0x48 + 20] = kStoreFormatted;
  image[0x48 + 21] = 0xFE;
  put16(image, 0x48 + 22, 0);
  put32(image, 0x48 + 24, 0);
  std::copy(kEmptyWorkingBlockHeader.begin(), kEmptyWorkingBlockHeader.end(),
            image.begin() + kWorkingBlock4mOffset);
  return image;
}

std::vector<uint8_t> rewrite_store(const std::vector<uint8_t>& image, const std::vector<Variable>& variables) {
  StoreRegion r = locate_store(image);
  std::vector<uint8_t> out = image;
  std::fill(out.begin() + static_cast<std::ptrdiff_t>(r.begin), out.begin() + static_cast<std::ptrdiff_t>(r.end), 0xFF);
  size_t at = r.begin;
  for (const Variable& v : variables) {
    std::vector<uint8_t> record = encode(v);
    if (record.size() > r.end - at)
      throw EfiStoreError(fmt::format("the variables do not fit the store's {} bytes (at {} of {} variables)",
                                      r.end - r.begin, &v - variables.data() + 1, variables.size()));
    std::copy(record.begin(), record.end(), out.begin() + static_cast<std::ptrdiff_t>(at));
    at = std::min(align4(at + record.size()), r.end);
  }
  // The fault-tolerant-write working block (on a block boundary after the
  // store) and its spare area: emptied.
  for (size_t block = (r.end + kBlock - 1) / kBlock * kBlock; block + kEmptyWorkingBlockHeader.size() <= r.fv_end;
       block += kBlock) {
    if (std::equal(kEmptyWorkingBlockHeader.begin(), kEmptyWorkingBlockHeader.begin() + 16,
                   out.begin() + static_cast<std::ptrdiff_t>(block))) {
      std::fill(out.begin() + static_cast<std::ptrdiff_t>(block), out.begin() + static_cast<std::ptrdiff_t>(r.fv_end),
                0xFF);
      std::copy(kEmptyWorkingBlockHeader.begin(), kEmptyWorkingBlockHeader.end(),
                out.begin() + static_cast<std::ptrdiff_t>(block));
      break;
    }
  }
  return out;
}

std::vector<uint8_t> read_store_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw EfiStoreError(fmt::format("cannot read the UEFI variable store {}: {}", path.string(),
                                           std::strerror(errno)));
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_store_file(const std::filesystem::path& path, const std::vector<uint8_t>& image) {
  std::filesystem::path temporary = path;
  temporary += ".new";
  write_host_file(temporary, std::string_view(reinterpret_cast<const char*>(image.data()), image.size()));
  std::error_code error;
  std::filesystem::rename(temporary, path, error);
  if (error) {
    std::filesystem::remove(temporary, error);
    throw EfiStoreError(fmt::format("cannot replace the UEFI variable store {}: {}", path.string(), error.message()));
  }
}

}  // namespace td::efi
