// OVMF's UEFI variable store: the flash image (OVMF_VARS*.fd) that QEMU maps
// as the second pflash drive, read and written on the host while the
// machine is off. The image is an edk2 firmware volume (EFI_FIRMWARE_VOLUME_HEADER
// with gEfiSystemNvDataFvGuid) whose first part is an authenticated variable
// store (VARIABLE_STORE_HEADER, then AUTHENTICATED_VARIABLE_HEADER records,
// each 4-byte aligned), followed by the fault-tolerant-write working block
// and its spare area.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "test_driver/errors.h"

namespace td::efi {

// An EFI_GUID as the store holds it (Data1-3 little-endian).
using Guid = std::array<uint8_t, 16>;

// Attributes of a variable (UEFI's EFI_VARIABLE_*).
inline constexpr uint32_t kNonVolatile = 0x1;
inline constexpr uint32_t kBootServiceAccess = 0x2;
inline constexpr uint32_t kRuntimeAccess = 0x4;
inline constexpr uint32_t kTimeBasedAuthenticatedWriteAccess = 0x20;

// A record's state byte: bits are cleared as a variable is added and deleted.
inline constexpr uint8_t kVarAdded = 0x3F;
inline constexpr uint8_t kVarHeaderValidOnly = 0x7F;
inline constexpr uint8_t kVarInDeletedTransition = 0xFE;  // and-ed into the state
inline constexpr uint8_t kVarDeleted = 0xFD;              // and-ed into the state

// One AUTHENTICATED_VARIABLE_HEADER record with its name and data.
struct Variable {
  Guid vendor{};
  std::u16string name;  // without the terminating NUL the store holds
  std::vector<uint8_t> data;
  uint32_t attributes = kNonVolatile | kBootServiceAccess | kRuntimeAccess;
  uint8_t state = kVarAdded;
  uint64_t monotonic_count = 0;
  std::array<uint8_t, 16> timestamp{};  // EFI_TIME, as stored
  uint32_t pubkey_index = 0;

  // Whether the firmware would read this record as the variable's value:
  // added, or added and in transition to deleted (a write that was cut off).
  bool live() const;
};

// The store's file is not an OVMF variable store, or a record in it is cut off.
class EfiStoreError : public Error {
 public:
  using Error::Error;
};

// Every record of the store in the image, in store order (deleted ones too).
std::vector<Variable> parse_store(const std::vector<uint8_t>& image);
// The variables the firmware would see: the live records, the last one of
// each (vendor, name), in store order.
std::vector<Variable> live_variables(const std::vector<Variable>& records);

// An empty store laid out as Debian's and upstream's OVMF_VARS_4M.fd (the
// 4 MB OVMF build: a 528 KiB flash image).
std::vector<uint8_t> empty_store();
// `image` with its records replaced by `variables` (one record each, in
// order) and its fault-tolerant-write areas reset, so that the firmware
// finds no half-done write to replay. Throws EfiStoreError when they do not fit.
std::vector<uint8_t> rewrite_store(const std::vector<uint8_t>& image, const std::vector<Variable>& variables);

// The files: read_store_file reads the whole image; write_store_file
// replaces the file (written beside it and renamed).
std::vector<uint8_t> read_store_file(const std::filesystem::path& path);
void write_store_file(const std::filesystem::path& path, const std::vector<uint8_t>& image);

}  // namespace td::efi
