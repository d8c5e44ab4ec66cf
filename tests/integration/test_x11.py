"""The X11 helpers, the keyboard and the screen against a real X server: the
`x11` guest (tests/guests/build x11: the systemd guest plus Xorg on QEMU's
standard VGA, matchbox, xterm), booted once for the module."""
import re
import struct

import pytest

from conftest import Bed
from test_driver import errors


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    return Bed(tmp_path_factory.mktemp("x11"))


@pytest.fixture(scope="module")
def machine(bed):
    m = bed.machine("x11")
    m.start()
    m.wait_for_x(timeout=300)
    yield m
    m.release()


@pytest.fixture(scope="module")
def xterm(machine):
    """An xterm titled td-term (root's shell, DISPLAY from the backdoor), with its prompt on screen."""
    machine.succeed("xterm -T td-term >/dev/null 2>&1 &")
    machine.wait_for_window("^td-term$", timeout=120)
    machine.wait_for_text("root@machine", timeout=300)
    return "td-term"


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def test_wait_for_x_returns_once_clients_can_connect(machine):
    # What wait_for_x waits for (as upstream's): the user manager's graphical-session.target
    # line in the journal, and the server's socket. Once it returns, a client connects.
    assert machine.succeed("journalctl -b SYSLOG_IDENTIFIER=systemd | grep -c 'Reached target Current graphical'").strip() != "0"
    out = machine.succeed("xwininfo -root")
    assert re.search(r"Width: 1024\s+Height: 768", out), out
    machine.wait_for_x(timeout=10)  # a second call returns at once


def test_window_names_come_from_the_real_server(machine, xterm):
    names = machine.get_window_names()
    assert "td-term" in names
    machine.succeed("xterm -T 'second window' >/dev/null 2>&1 &")
    machine.wait_for_window(r"^second window$", timeout=120)
    assert {"td-term", "second window"} <= set(machine.get_window_names())
    machine.succeed("pkill -f 'xterm -T second window'")
    machine.wait_until_fails("xwininfo -root -tree | grep -q 'second window'", timeout=60)
    assert "second window" not in machine.get_window_names()


def test_wait_for_window_times_out_naming_the_windows(machine, xterm):
    with pytest.raises(errors.RequestedAssertionFailed, match="timed out"):
        machine.wait_for_window("^no such window$", timeout=2)


def test_send_chars_types_into_the_focused_xterm(machine, xterm):
    # Shifted characters, quotes and a newline go through CHAR_TO_KEY, QEMU's PS/2 keyboard,
    # libinput and the X server into the shell in the xterm.
    machine.send_chars("echo \"Typed_In X: 6*7=\"$((6*7))'!' > /tmp/typed\n")
    machine.wait_for_file("/tmp/typed", timeout=60)
    assert machine.succeed("cat /tmp/typed") == "Typed_In X: 6*7=42!\n"


def test_send_key_combinations_reach_the_shell(machine, xterm):
    # ctrl-u erases the typed line, so only what follows it runs.
    machine.send_chars("echo wrong > /tmp/keys")
    machine.send_key("ctrl-u")
    machine.send_chars("echo right > /tmp/keys")
    machine.send_key("ret")
    machine.wait_for_file("/tmp/keys", timeout=60)
    assert machine.succeed("cat /tmp/keys") == "right\n"


def test_screenshot_is_the_x_screen(machine, xterm, bed):
    machine.screenshot("x11-screen")
    png = bed.out / "x11-screen.png"
    assert png_size(png) == (1024, 768)


def test_screen_text_reads_the_xterm(machine, xterm):
    machine.send_chars("clear; echo ocr-$((40+2))-check\n")
    machine.wait_for_text("ocr-42-check", timeout=300)
    assert "ocr-42-check" in machine.get_screen_text()
    assert any("ocr-42-check" in text for text in machine.get_screen_text_variants())


def test_wait_for_text_sees_text_drawn_later(machine, xterm):
    # The word appears only when the guest prints it, ~3 s after the line is typed (the typed
    # line has it split in two, and `clear` wipes that line first).
    machine.send_chars("sleep 3; clear; printf '%s%s\\n' arr ived\n")
    machine.wait_for_text("arrived", timeout=300)
    assert machine.succeed("true") == ""
    with pytest.raises(errors.RequestedAssertionFailed):
        machine.wait_for_text("never-on-screen-7331", timeout=2)
