"""Each guest image boots with exactly the QEMU options the reference driver
appends and exchanges a command and its exit status with the backdoor."""
import time

import pytest

from test_driver.machine import Machine, NixStartScript


@pytest.mark.parametrize("image", ["mini", "systemd"])
def test_image_boots_to_backdoor(bed, image):
    cmd = NixStartScript(bed.script(image, "guest"))
    argv = cmd.argv("M", "S")
    assert argv[1:] == ["-monitor", "unix:M", "-chardev", "socket,id=shell,path=S", "-no-reboot", "-device",
                        "virtio-serial", "-device", "virtconsole,chardev=shell", "-device", "virtio-rng-pci",
                        "-serial", "stdio", "-nographic"]
    m = Machine(out_dir=bed.out, tmp_dir=bed.tmp, start_command=cmd, name="guest")
    try:
        start = time.monotonic()
        m.connect()
        print(f"{image}: boot to backdoor {time.monotonic() - start:.1f} s")
        assert m.execute("echo hi; exit 3", timeout=None) == (3, "hi\n")
        assert m.succeed("hostname").strip() == "guest"
        assert m.succeed("test -d /tmp/shared && test -d /tmp/xchg && echo ok") == "ok\n"
        if image == "systemd":
            assert m.succeed("systemctl is-active backdoor.service").strip() == "active"
        m.shutdown()
        assert not m.booted
    finally:
        m.release()
