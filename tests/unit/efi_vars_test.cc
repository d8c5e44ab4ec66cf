// efi_vars.h: OVMF variable stores, Debian's templates and constructed ones.
#include "test_driver/efi_vars.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>

namespace td::efi {
namespace {

const std::filesystem::path kOvmf = "/usr/share/OVMF";

Variable demo(std::u16string name, std::vector<uint8_t> data) {
  Variable v;
  v.vendor = {0xf8, 0x72, 0x9f, 0xa1, 0x54, 0xb5, 0xd7, 0x4b, 0xa0, 0xc2, 0x27, 0x62, 0xbd, 0x85, 0x46, 0x91};
  v.name = std::move(name);
  v.data = std::move(data);
  return v;
}

std::vector<uint8_t> debian(const char* file) {
  // Debian's ovmf package is a dependency of the project (tools/install-deps).
  return read_store_file(kOvmf / file);
}

TEST(EfiVars, EmptyStoreIsDebiansFourMegabyteTemplate) {
  EXPECT_EQ(empty_store(), debian("OVMF_VARS_4M.fd"));
  EXPECT_TRUE(parse_store(empty_store()).empty());
}

TEST(EfiVars, DebiansTwoMegabyteTemplateIsAnEmptyStore) { EXPECT_TRUE(parse_store(debian("OVMF_VARS.fd")).empty()); }

TEST(EfiVars, DebiansSecureBootTemplateHasTheMicrosoftKeys) {
  auto vars = live_variables(parse_store(debian("OVMF_VARS_4M.ms.fd")));
  std::vector<std::u16string> names;
  for (auto& v : vars) names.push_back(v.name);
  for (std::u16string want : {u"PK", u"KEK", u"db", u"dbx"})
    EXPECT_NE(std::find(names.begin(), names.end(), want), names.end());
  for (auto& v : vars) {
    EXPECT_FALSE(v.data.empty());
    EXPECT_TRUE(v.attributes & kNonVolatile);
  }
}

TEST(EfiVars, WrittenVariablesReadBackWithEveryField) {
  Variable a = demo(u"Demo", {0x2a});
  a.attributes = kNonVolatile | kBootServiceAccess | kRuntimeAccess | kTimeBasedAuthenticatedWriteAccess;
  a.monotonic_count = 0x0102030405060708;
  a.timestamp = {0xe8, 0x07, 12, 2, 19, 30, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0};
  a.pubkey_index = 7;
  Variable b = demo(u"Second\u00e9", std::vector<uint8_t>(5, 0x11));  // an odd size: the next record is aligned
  Variable c = demo(u"Third", {});
  auto image = rewrite_store(empty_store(), {a, b, c});
  EXPECT_EQ(image.size(), empty_store().size());
  auto back = parse_store(image);
  ASSERT_EQ(back.size(), 3u);
  EXPECT_EQ(back[0].name, u"Demo");
  EXPECT_EQ(back[0].data, std::vector<uint8_t>{0x2a});
  EXPECT_EQ(back[0].attributes, a.attributes);
  EXPECT_EQ(back[0].monotonic_count, a.monotonic_count);
  EXPECT_EQ(back[0].timestamp, a.timestamp);
  EXPECT_EQ(back[0].pubkey_index, 7u);
  EXPECT_EQ(back[0].vendor, a.vendor);
  EXPECT_EQ(back[0].state, kVarAdded);
  EXPECT_EQ(back[1].name, u"Second\u00e9");
  EXPECT_EQ(back[1].data.size(), 5u);
  EXPECT_EQ(back[2].name, u"Third");
  EXPECT_TRUE(back[2].data.empty());
}

TEST(EfiVars, RecordLayoutIsEdk2s) {
  auto image = rewrite_store(empty_store(), {demo(u"AB", {0x2a})});
  // The first record follows the store header at 0x48 + 28.
  size_t at = 0x64;
  EXPECT_EQ(image[at], 0xAA);
  EXPECT_EQ(image[at + 1], 0x55);
  EXPECT_EQ(image[at + 2], kVarAdded);
  EXPECT_EQ(image[at + 36], 6);  // NameSize: "AB" and NUL in UTF-16
  EXPECT_EQ(image[at + 40], 1);  // DataSize
  EXPECT_EQ(image[at + 60], 'A');
  EXPECT_EQ(image[at + 62], 'B');
  EXPECT_EQ(image[at + 66], 0x2a);
  EXPECT_EQ(image[at + 67], 0xFF);  // then padding to 4 bytes and an empty store
}

TEST(EfiVars, DeletedAndSupersededRecordsAreNotLive) {
  Variable old_value = demo(u"Demo", {1});
  old_value.state = kVarAdded & kVarDeleted;
  Variable header_only = demo(u"Half", {3});
  header_only.state = kVarHeaderValidOnly;
  Variable in_transition = demo(u"Demo", {2});
  in_transition.state = kVarAdded & kVarInDeletedTransition;
  Variable newest = demo(u"Demo", {4});
  auto records = parse_store(rewrite_store(empty_store(), {old_value, header_only, in_transition, newest}));
  ASSERT_EQ(records.size(), 4u);
  EXPECT_FALSE(records[0].live());
  EXPECT_FALSE(records[1].live());
  EXPECT_TRUE(records[2].live());
  auto live = live_variables(records);
  ASSERT_EQ(live.size(), 1u);
  EXPECT_EQ(live[0].data, std::vector<uint8_t>{4});
}

TEST(EfiVars, RewriteKeepsTheStoresOwnLayoutAndEmptiesTheFaultTolerantWriteAreas) {
  auto two_megabyte = debian("OVMF_VARS.fd");
  auto image = rewrite_store(two_megabyte, {demo(u"Demo", {0x2a})});
  EXPECT_EQ(image.size(), two_megabyte.size());
  EXPECT_EQ(live_variables(parse_store(image)).size(), 1u);
  // A pending write in the spare area of a 4 MB store is dropped.
  auto dirty = empty_store();
  dirty[0x42000] = 0x00;
  dirty[0x41020] = 0x12;
  auto clean = rewrite_store(dirty, {});
  EXPECT_EQ(clean, empty_store());
  // Only the header region's bytes before the records stay as they were.
  EXPECT_TRUE(std::equal(image.begin(), image.begin() + 0x64, two_megabyte.begin()));
}

TEST(EfiVars, WhatDoesNotFitIsAnError) {
  std::vector<Variable> many(5, demo(u"Big", std::vector<uint8_t>(0x10000, 0)));
  EXPECT_THROW(rewrite_store(empty_store(), many), EfiStoreError);
}

TEST(EfiVars, WhatIsNotAStoreIsAnErrorNamingWhy) {
  auto image = empty_store();
  image[40] = 'X';
  try {
    parse_store(image);
    FAIL();
  } catch (const EfiStoreError& e) {
    EXPECT_NE(std::string(e.what()).find("_FVH"), std::string::npos);
  }
  EXPECT_THROW(parse_store({}), EfiStoreError);
  auto unformatted = empty_store();
  unformatted[0x48 + 20] = 0xFF;
  EXPECT_THROW(parse_store(unformatted), EfiStoreError);
}

TEST(EfiVars, ACutOffRecordIsAnErrorNamingItsOffset) {
  auto image = rewrite_store(empty_store(), {demo(u"Demo", {0x2a})});
  image[0x64 + 40] = 0xFF;  // DataSize far beyond the store
  image[0x64 + 41] = 0xFF;
  image[0x64 + 42] = 0xFF;
  try {
    parse_store(image);
    FAIL();
  } catch (const EfiStoreError& e) {
    EXPECT_NE(std::string(e.what()).find("0x64"), std::string::npos) << e.what();
  }
}

TEST(EfiVars, StoreFilesAreReplacedWhole) {
  auto dir = std::filesystem::temp_directory_path() / ("efi_vars_test." + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  auto file = dir / "m-efi-vars.fd";
  write_store_file(file, rewrite_store(empty_store(), {demo(u"Demo", {0x2a})}));
  EXPECT_EQ(live_variables(parse_store(read_store_file(file))).size(), 1u);
  EXPECT_FALSE(std::filesystem::exists(dir / "m-efi-vars.fd.new"));
  EXPECT_THROW(read_store_file(dir / "missing.fd"), EfiStoreError);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace td::efi
