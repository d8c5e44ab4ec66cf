"""The X11 helpers, the keyboard and the screen against a real X server: the
`x11` guest (tests/guests/build x11: the systemd guest plus Xorg on QEMU's
standard VGA, matchbox, xterm), booted once for the module."""
import os
import re
import struct
import subprocess
import time

import pytest

from conftest import Bed
from test_driver import errors


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    return Bed(tmp_path_factory.mktemp("x11"))


@pytest.fixture(scope="module")
def machine(bed):
    # The whole session is recorded (TEST_DRIVER_VIDEO=1, as --video): after
    # the release, OUTPUT/machine.webm is the X screen's video.
    os.environ["TEST_DRIVER_VIDEO"] = "1"
    try:
        m = bed.machine("x11")
    finally:
        del os.environ["TEST_DRIVER_VIDEO"]
    started = time.monotonic()
    m.start()
    m.wait_for_x(timeout=300)
    yield m
    seconds = time.monotonic() - started
    m.release()
    video = bed.out / "machine.webm"
    from test_video import check_video, brightest_in_last_frame
    info = check_video(video, at_least_seconds=min(seconds / 2, 20))
    assert info["duration"] <= seconds + 30, info
    assert brightest_in_last_frame(video) > 200  # the xterms' white, not a black screen


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


# --- screen matching (issue 18): save_screen_region, screen_matches, wait_for_screen_match ---

# The xterm's first two text lines (DejaVu Sans Mono 16: ~26 pixels a line, below matchbox's title bar).
TWO_LINES = (0, 20, 400, 54)
FIRST_LINE = (0, 20, 400, 27)


def draw(machine, command):
    """Runs `clear; command` in the xterm and returns once the shell has run it (its output is on the
    pty; xterm draws it a moment later)."""
    machine.succeed("rm -f /tmp/sm-drawn")
    machine.send_chars(f"clear; {command}; touch /tmp/sm-drawn\n")
    machine.wait_for_file("/tmp/sm-drawn", timeout=60)


def settled_reference(machine, name, region):
    """save_screen_region once the region has stayed the same (exactly) for half a second."""
    deadline = time.monotonic() + 60
    while True:
        path = machine.save_screen_region(name, region)
        time.sleep(0.5)
        if machine.screen_matches(path, region, threshold=0, channel_tolerance=0):
            return path
        assert time.monotonic() < deadline, f"the screen region {region} did not settle"


def wait_until_no_match(machine, reference, region):
    deadline = time.monotonic() + 60
    while machine.screen_matches(reference, region):
        assert time.monotonic() < deadline, f"{reference} still matches the screen"
        time.sleep(0.2)


def ppm_pixels(png):
    """The RGB bytes and size of a PNG, decoded by netpbm's pngtopnm."""
    data = subprocess.run(["pngtopnm", str(png)], check=True, stdout=subprocess.PIPE).stdout
    magic, width, height, maxval, pixels = data.split(maxsplit=4)
    assert magic == b"P6" and maxval == b"255", data[:20]
    return int(width), int(height), pixels


def test_save_screen_region_is_a_reference_the_screen_matches(machine, xterm, bed):
    draw(machine, "echo match-$((6*7))")
    ref = settled_reference(machine, "sm-two-lines", TWO_LINES)
    assert ref == bed.out / "sm-two-lines.png"  # screenshot()'s naming rule
    assert png_size(ref) == (400, 54)
    assert machine.screen_matches(ref, TWO_LINES)
    assert machine.screen_matches(str(ref), list(TWO_LINES), threshold=0.0)
    # The same size lower down, where the xterm is blank, is not the text.
    assert not machine.screen_matches(ref, (0, 400, 400, 54))
    # The whole screen, and a name with "." or "/" kept as given.
    whole = machine.save_screen_region(str(bed.root / "sm-whole.ref.png"))
    assert whole == bed.root / "sm-whole.ref.png" and png_size(whole) == (1024, 768)
    assert machine.screen_matches(whole)
    # Sizes that do not fit name both sizes.
    with pytest.raises(errors.Error, match=r"the screen \(1024x768\) with .*sm-two-lines.png \(400x54\)"):
        machine.screen_matches(ref)
    with pytest.raises(errors.Error, match=r"\(900, 700, 200, 100\) \(200x100 at x=900, y=700\) does not lie "
                                           r"inside the screen \(1024x768\)"):
        machine.screen_matches(ref, (900, 700, 200, 100))
    with pytest.raises(errors.Error, match="cannot read the image .*missing.png: it does not exist"):
        machine.screen_matches(bed.root / "missing.png")


def test_typing_changes_the_match_and_erasing_restores_it(machine, xterm):
    draw(machine, "echo match-$((6*7))")
    ref = settled_reference(machine, "sm-prompt", TWO_LINES)
    machine.send_chars("typed-over")  # onto the prompt line, not run
    wait_until_no_match(machine, ref, TWO_LINES)
    machine.send_key("ctrl-u")
    start = time.monotonic()
    machine.wait_for_screen_match(ref, TWO_LINES, timeout=60)
    assert time.monotonic() - start < 30
    assert machine.screen_matches(ref, TWO_LINES)


def test_wait_for_screen_match_sees_text_drawn_later(machine, xterm):
    draw(machine, "printf '%s-%s\\n' later 7")
    ref = settled_reference(machine, "sm-later", FIRST_LINE)
    draw(machine, "echo other")
    wait_until_no_match(machine, ref, FIRST_LINE)
    # The line appears only after the guest's sleep; until then the first line is "other" or blank.
    start = time.monotonic()
    machine.send_chars("clear; sleep 4; clear; printf '%s-%s\\n' later 7\n")
    assert not machine.screen_matches(ref, FIRST_LINE)
    machine.wait_for_screen_match(ref, FIRST_LINE, timeout=120)
    assert time.monotonic() - start > 3
    assert machine.screen_matches(ref, FIRST_LINE)


def test_wait_for_screen_match_timeout_saves_the_screen_and_its_difference(machine, xterm, bed):
    draw(machine, "echo before-change")
    ref = settled_reference(machine, "sm-before", TWO_LINES)
    draw(machine, "echo AFTER-CHANGE-XYZ")
    wait_until_no_match(machine, ref, TWO_LINES)
    actual, diff = bed.out / "sm-before.actual.png", bed.out / "sm-before.diff.png"
    start = time.monotonic()
    with pytest.raises(errors.RequestedAssertionFailed) as raised:
        machine.wait_for_screen_match(ref, TWO_LINES, timeout=2)
    assert time.monotonic() - start < 10
    message = str(raised.value)
    assert re.search(r"^action timed out after [\d.]+ seconds \(timeout=2\): the screen region \(0, 20, 400, 54\) "
                     r"does not match .*sm-before.png: at best (\d+) of 21600 pixels \([\d.]+%\) differ", message), message
    assert str(actual) in message and str(diff) in message
    # The saved screen is what the region shows now; the difference marks pixels red.
    assert png_size(actual) == (400, 54) and png_size(diff) == (400, 54)
    assert machine.screen_matches(actual, TWO_LINES, threshold=0)
    _, _, diff_pixels = ppm_pixels(diff)
    red = sum(1 for i in range(0, len(diff_pixels), 3) if diff_pixels[i:i + 3] == b"\xff\x00\x00")
    best = int(re.search(r"at best (\d+) of", message).group(1))
    assert red >= best > 100  # a changed word is hundreds of pixels
