#include "test_driver/host_files.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "test_driver/errors.h"

namespace td {
namespace {

class HostFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "host-files-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static std::string read(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream content;
    content << in.rdbuf();
    return content.str();
  }

  std::filesystem::path dir_;
};

TEST_F(HostFilesTest, WritesAndOverwrites) {
  write_host_file(dir_ / "a", "first, longer content");
  write_host_file(dir_ / "a", "second");
  EXPECT_EQ(read(dir_ / "a"), "second");
}

TEST_F(HostFilesTest, AFullDiskIsNamedAsSuch) {
  // /dev/full fails every write with ENOSPC, as a full filesystem does.
  try {
    write_host_file("/dev/full", std::string(100000, 'x'));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "cannot write /dev/full: No space left on device");
  }
  std::filesystem::create_directory(dir_ / "tree");
  write_host_file(dir_ / "tree" / "big", std::string(1 << 20, 'y'));
  try {
    copy_host_tree(dir_ / "tree" / "big", "/dev/full");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "cannot copy " + (dir_ / "tree" / "big").string() + " to /dev/full: No space left on device");
  }
}

TEST_F(HostFilesTest, CopiesATreeWithModesAndSymlinks) {
  auto from = dir_ / "from";
  std::filesystem::create_directories(from / "sub" / "deeper");
  write_host_file(from / "file", "content");
  write_host_file(from / "sub" / "deeper" / "script", "#!/bin/sh\n");
  ::chmod((from / "sub" / "deeper" / "script").c_str(), 0750);
  std::filesystem::create_symlink("sub/deeper/script", from / "link");
  copy_host_tree(from, dir_ / "to");
  EXPECT_EQ(read(dir_ / "to" / "file"), "content");
  EXPECT_EQ(read(dir_ / "to" / "sub" / "deeper" / "script"), "#!/bin/sh\n");
  struct stat st {};
  ASSERT_EQ(::stat((dir_ / "to" / "sub" / "deeper" / "script").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  EXPECT_TRUE(std::filesystem::is_symlink(dir_ / "to" / "link"));
  EXPECT_EQ(std::filesystem::read_symlink(dir_ / "to" / "link"), "sub/deeper/script");
  // Again over the copy: overwritten, not an error.
  write_host_file(from / "file", "changed");
  copy_host_tree(from, dir_ / "to");
  EXPECT_EQ(read(dir_ / "to" / "file"), "changed");
}

TEST_F(HostFilesTest, AMissingSourceIsNamed) {
  try {
    copy_host_tree(dir_ / "nowhere", dir_ / "to");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("nowhere"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("No such file or directory"), std::string::npos);
  }
}

}  // namespace
}  // namespace td
