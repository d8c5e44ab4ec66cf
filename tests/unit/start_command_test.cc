#include "test_driver/start_command.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>

TEST(NixStartScript, MachineNameFromScript) {
  EXPECT_EQ(td::NixStartScript("/nix/store/x/bin/run-server1-vm").machine_name(), "server1");
  EXPECT_EQ(td::NixStartScript("/bin/qemu").machine_name(), "machine");
}

TEST(StartCommand, AppendsTheReferenceOptions) {
  ::unsetenv("DISPLAY");
  ::unsetenv("WAYLAND_DISPLAY");
  ::setenv("QEMU_OPTS", "-m 1024 -smp 'a b'", 1);
  auto argv = td::NixStartScript("/does/not/exist/run-a-vm").argv("/s/monitor", "/s/shell");
  std::vector<std::string> expected{"/does/not/exist/run-a-vm", "-monitor", "unix:/s/monitor", "-chardev",
                                    "socket,id=shell,path=/s/shell", "-no-reboot", "-device", "virtio-serial",
                                    "-device", "virtconsole,chardev=shell", "-device", "virtio-rng-pci", "-serial",
                                    "stdio", "-m", "1024", "-smp", "a b", "-nographic"};
  EXPECT_EQ(argv, expected);
  ::unsetenv("QEMU_OPTS");
  auto reboot = td::NixStartScript("x").argv("m", "s", true);
  EXPECT_EQ(std::count(reboot.begin(), reboot.end(), "-no-reboot"), 0);
  EXPECT_EQ(std::count(reboot.begin(), reboot.end(), "virtconsole,chardev=shell"), 1);
}

TEST(StartCommand, EnvironmentPointsAtStateDir) {
  auto env = td::StartCommand::build_environment("/state", "/shared");
  EXPECT_NE(std::find(env.begin(), env.end(), "TMPDIR=/state"), env.end());
  EXPECT_NE(std::find(env.begin(), env.end(), "SHARED_DIR=/shared"), env.end());
  EXPECT_NE(std::find(env.begin(), env.end(), "USE_TMPDIR=1"), env.end());
}

TEST(LegacyStartCommand, BuildsTheReferenceCommand) {
  td::LegacyStartCommand::Options o;
  o.qemu_binary = "qemu-system-x86_64";
  o.net_backend_args = "restrict=on";
  o.cdrom = "/x.iso";
  o.qemu_flags = "-cpu max";
  EXPECT_EQ(td::LegacyStartCommand(o).base_command(),
            "qemu-system-x86_64 -m 384 -netdev user,id=net0,restrict=on -device virtio-net-pci,netdev=net0 "
            "-cdrom /x.iso -cpu max");
}
