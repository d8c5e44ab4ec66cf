#include "test_driver/snapshot.h"

#include <gtest/gtest.h>
#include <unistd.h>

TEST(Snapshot, Parses9pMountsAndDecodesEscapes) {
  auto mounts = td::parse_9p_mounts(
      "proc /proc proc rw,nosuid 0 0\n"
      "shared /tmp/shared 9p rw,sync,dirsync,relatime,access=client,msize=262144,trans=virtio 0 0\n"
      "tmpfs /tmp tmpfs rw 0 0\n"
      "nix-store /nix/.ro\\040store 9p ro,trans=virtio 0 0\n");
  ASSERT_EQ(mounts.size(), 2u);
  EXPECT_EQ(mounts[0].tag, "shared");
  EXPECT_EQ(mounts[0].mount_point, "/tmp/shared");
  EXPECT_EQ(mounts[0].options, "rw,sync,dirsync,relatime,access=client,msize=262144,trans=virtio");
  EXPECT_EQ(mounts[1].tag, "nix-store");
  EXPECT_EQ(mounts[1].mount_point, "/nix/.ro store");
  EXPECT_TRUE(td::parse_9p_mounts("").empty());
  EXPECT_TRUE(td::parse_9p_mounts("garbage\n9p\n").empty());
}

TEST(Snapshot, FindsVirtfsAndFsdevExports) {
  auto exports = td::virtfs_exports({"qemu", "-virtfs", "local,path=/s,security_model=none,mount_tag=shared",
                                     "-fsdev", "local,id=fs0,path=/nix/store,readonly=on", "-device",
                                     "virtio-9p-pci,fsdev=fs0,mount_tag=nix-store", "-device", "virtio-rng-pci",
                                     "-virtfs"});
  EXPECT_EQ(exports.size(), 2u);
  EXPECT_EQ(exports["shared"], "/s");
  EXPECT_EQ(exports["nix-store"], "/nix/store");
}

TEST(Snapshot, ReadsACommandLine) {
  auto line = td::read_cmdline(::getpid());
  ASSERT_TRUE(line.has_value());
  EXPECT_FALSE(line->empty());
  EXPECT_FALSE(td::read_cmdline(999999999).has_value());
}

TEST(Snapshot, ClockCommandIsGnuDateAtNow) {
  std::string command = td::set_clock_command();
  EXPECT_EQ(command.rfind("date -u -s @", 0), 0u);
  long long seconds = std::stoll(command.substr(12));
  EXPECT_NEAR(static_cast<double>(seconds), static_cast<double>(::time(nullptr)), 2.0);
}
