#include "test_driver/boot_cache.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

namespace {

struct BootCacheTest : ::testing::Test {
  std::filesystem::path root;
  void SetUp() override {
    char name[] = "/tmp/td-boot-cache-test-XXXXXX";
    root = ::mkdtemp(name);
    std::filesystem::create_directories(root / "image");
    write(root / "image" / "kernel", "kernel 1");
    write(root / "run-m-vm", "#!/bin/sh\nexec qemu -kernel " + (root / "image" / "kernel").string() + " \"$@\"\n");
  }
  void TearDown() override { std::filesystem::remove_all(root); }
  static void write(const std::filesystem::path& path, const std::string& text) { std::ofstream(path) << text; }
  td::BootCache::Inputs inputs(const std::string& state_dir) {
    td::BootCache::Inputs in;
    in.start_words = {(root / "run-m-vm").string()};
    in.qemu_argv = {"qemu", "-kernel", (root / "image" / "kernel").string(), "-monitor", "unix:" + state_dir + "/monitor"};
    in.qemu_binary = "/proc/self/exe";
    in.run_paths = {{state_dir, "@STATE_DIR@"}};
    return in;
  }
};

TEST_F(BootCacheTest, KeyIsStableAcrossRunDirectoriesAndFollowsNamedFiles) {
  td::BootCache cache(root / "cache");
  std::string why;
  auto a = cache.key(inputs("/tmp/run1/vm-state-m"), why);
  auto b = cache.key(inputs("/tmp/run2/vm-state-m"), why);
  ASSERT_TRUE(a && b) << why;
  EXPECT_EQ(a->hex, b->hex);
  EXPECT_NE(a->text.find("unix:@STATE_DIR@/monitor"), std::string::npos);
  EXPECT_NE(a->text.find("file " + (root / "image" / "kernel").string()), std::string::npos);
  // A named file's content is in the key (its remembered hash is not reused:
  // the change time differs).
  ::usleep(10000);
  write(root / "image" / "kernel", "kernel 2");
  auto c = cache.key(inputs("/tmp/run1/vm-state-m"), why);
  ASSERT_TRUE(c) << why;
  EXPECT_NE(a->hex, c->hex);
  // So is the start script's.
  write(root / "run-m-vm", "#!/bin/sh\nexec qemu -m 512 \"$@\"\n");
  auto d = cache.key(inputs("/tmp/run1/vm-state-m"), why);
  ASSERT_TRUE(d) << why;
  EXPECT_NE(c->hex, d->hex);
}

TEST_F(BootCacheTest, AFileThatCannotBeReadIsNoKey) {
  if (::geteuid() == 0) {
    // root reads anything: a named file that vanishes mid-way cannot be
    // staged, but an unreadable QEMU binary path can.
    td::BootCache cache(root / "cache");
    auto in = inputs("/s");
    in.qemu_binary = root / "no-such-qemu";
    std::string why;
    EXPECT_FALSE(cache.key(in, why));
    EXPECT_NE(why.find("no-such-qemu"), std::string::npos);
    return;
  }
  ::chmod((root / "image" / "kernel").c_str(), 0);
  td::BootCache cache(root / "cache");
  std::string why;
  EXPECT_FALSE(cache.key(inputs("/s"), why));
  EXPECT_NE(why.find("kernel"), std::string::npos);
}

TEST_F(BootCacheTest, LookupNeedsBothFilesAndTheKeyInTheMeta) {
  td::BootCache cache(root / "cache");
  std::string why;
  auto key = cache.key(inputs("/s"), why);
  ASSERT_TRUE(key) << why;
  EXPECT_FALSE(cache.lookup(*key));
  write(cache.state_file(*key), "state");
  EXPECT_FALSE(cache.lookup(*key));  // no metadata yet
  cache.write_meta(*key, td::Json::Object{{"mounts", td::Json(td::Json::Array{})}});
  auto meta = cache.lookup(*key);
  ASSERT_TRUE(meta);
  EXPECT_TRUE(meta->find("mounts"));
  write(cache.meta_file(*key), "{\"key\": \"another\"}");
  EXPECT_FALSE(cache.lookup(*key));
  write(cache.meta_file(*key), "not json");
  EXPECT_FALSE(cache.lookup(*key));
  cache.discard(*key);
  EXPECT_FALSE(std::filesystem::exists(cache.state_file(*key)));
  // No temporary file is left behind.
  for (const auto& entry : std::filesystem::directory_iterator(root / "cache"))
    EXPECT_EQ(entry.path().filename().string().find(".tmp-"), std::string::npos) << entry.path();
}

TEST(Sha256, KnownVector) {
  EXPECT_EQ(td::sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

}  // namespace
