"""--video (and the -c key "video"): nixos-test-driver records each QEMU
machine's screen to OUTPUT/<machine>.webm, a complete file also when the
script fails or the run is ended by SIGTERM. Real `mini` guests with the VGA
text console (start-script --vga-console); the videos are read back with
ffprobe and ffmpeg. The runs share one start script and one boot cache
(--boot-cache): the first boots (and saves its boot), the others restore it,
which saves CI a boot each; a run without --video restores what a run with
it saved (the recorder's QMP monitor is not in the cache's key)."""
import json
import signal
import subprocess
import time

import pytest

from conftest import driver_exe, require_tools, start_script

# ScreenRecorder's defaults: 2 frames a second, fitted into 1024x768.
WIDTH, HEIGHT, RATE = 1024, 768, 2


def probe(path):
    """What ffprobe reads in the video: codec, size, frames (decoded), duration."""
    require_tools("ffprobe")
    r = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                        "stream=codec_name,width,height,nb_read_frames:format=format_name,duration", "-of", "json",
                        str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    assert r.returncode == 0, f"ffprobe cannot read {path}: {r.stderr}"
    info = json.loads(r.stdout)
    assert info["streams"], f"{path} has no video stream: {r.stdout}"
    stream = info["streams"][0]
    return {"codec": stream["codec_name"], "width": stream["width"], "height": stream["height"],
            "frames": int(stream["nb_read_frames"]), "duration": float(info["format"]["duration"]),
            "format": info["format"]["format_name"]}


def brightest_in_last_frame(path):
    """The largest byte of the video's last frame's pixels (0: a black screen)."""
    r = subprocess.run(["ffmpeg", "-v", "error", "-sseof", "-1", "-i", str(path), "-frames:v", "1", "-f", "rawvideo",
                        "-pix_fmt", "gray", "-"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert r.returncode == 0 and r.stdout, r.stderr
    return max(r.stdout)


def recorder_story(log, path):
    """What a failed check prints in full: the driver's lines about the
    recording and the boot cache, and ffmpeg's own log (beside the VM state)."""
    lines = [l for l in log.splitlines() if any(w in l for w in ("record", "screendump", "ffmpeg", "video", "boot cache"))]
    ffmpeg_logs = sorted(path.parent.parent.glob("**/video-ffmpeg.log"))
    for f in ffmpeg_logs:
        lines.append(f"{f}: {f.read_text(errors='replace')[-2000:]}")
    return "\n".join(lines) or "(the log says nothing about the recording)"


def check_video(path, at_least_seconds, log=""):
    assert path.exists(), f"no video at {path}:\n{recorder_story(log, path)}"
    info = probe(path)
    good = {"VP9 in WebM": info["codec"] == "vp9" and "webm" in info["format"],
            f"{WIDTH}x{HEIGHT}": (info["width"], info["height"]) == (WIDTH, HEIGHT),
            f"{at_least_seconds * RATE} frames at least": info["frames"] >= at_least_seconds * RATE,
            f"{at_least_seconds} s at least": info["duration"] >= at_least_seconds}
    failed = [what for what, ok in good.items() if not ok]
    assert not failed, f"the video is not {', '.join(failed)}: {info}\n{recorder_story(log, path)}"
    return info


# The console shows the kernel's messages and a shell prompt: the video's
# last frame is not black.
SCRIPT = """
import time
machine.succeed("echo on the screen > /dev/tty1")
time.sleep(2)
"""


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """(start script, boot cache) for every run of this module."""
    top = tmp_path_factory.mktemp("video")
    script = start_script("mini", "machine", top, extra_args=("--vga-console",))
    return script, str(top / "boot-cache")


def test_video_of_a_run(bed, shared):
    require_tools("ffmpeg")
    script, cache = shared
    t0 = time.monotonic()
    r = bed.run_driver(SCRIPT, args=["--video", "--global-timeout", "180", "--boot-cache", cache, "-o", str(bed.out), "--start-scripts", script,
                                     "--"])
    wall = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    info = check_video(bed.out / "machine.webm", at_least_seconds=2, log=r.stderr)
    # At the wall clock's pace: not longer than the run (a frame every half second while QEMU ran).
    assert info["duration"] <= wall + 1, (info, wall)
    assert brightest_in_last_frame(bed.out / "machine.webm") > 100
    assert "video: recording the screen to" in r.stderr
    assert "frames (" in r.stderr and "seconds) written to" in r.stderr
    assert list(bed.out.iterdir()) == [bed.out / "machine.webm"]  # the frames stay in the state directory
    # Without --video: no video, and the boot the video run saved serves it.
    (bed.out / "machine.webm").unlink()
    r = bed.run_driver("machine.succeed('true')\n", args=["--global-timeout", "180", "--boot-cache", cache, "-o", str(bed.out),
                                                          "--start-scripts", script, "--"])
    assert r.returncode == 0, r.stderr
    assert "boot cache hit" in r.stderr, r.stderr
    assert "video:" not in r.stderr
    assert list(bed.out.iterdir()) == []


def test_video_from_the_config_file_when_the_script_fails(bed, shared):
    require_tools("ffmpeg")
    script, cache = shared
    test = bed.root / "failing.py"
    test.write_text(SCRIPT + "machine.succeed('exit 3')\n")
    config = bed.root / "config.json"
    config.write_text(json.dumps({"vms": [script], "test_script": str(test), "video": True}))
    r = subprocess.run([driver_exe(), "-c", str(config), "--global-timeout", "180", "--boot-cache", cache, "-o", str(bed.out)], env=bed.env(),
                       cwd=bed.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
    assert r.returncode == 1, r.stderr
    assert "command `exit 3` failed" in r.stderr
    check_video(bed.out / "machine.webm", at_least_seconds=2, log=r.stderr)


def test_a_clear_error_without_ffmpeg(bed):
    script = bed.script("mini", "machine")
    r = bed.run_driver("pass\n", args=["--video", "--start-scripts", script, "--"],
                       env=bed.env(PATH="/nonexistent"))
    assert r.returncode == 2
    assert "argument --video: ffmpeg is not found in $PATH (Debian package ffmpeg)" in r.stderr


def test_video_is_complete_after_sigterm(bed, shared):
    require_tools("ffmpeg")
    script, cache = shared
    marker = bed.root / "reached"
    test = bed.root / "test.py"
    test.write_text(SCRIPT.replace("time.sleep(2)", f"time.sleep(1)\nopen({str(marker)!r}, 'w').close()\n"
                                                    "time.sleep(120)"))
    stderr = open(bed.root / "stderr.txt", "w+")
    proc = subprocess.Popen([driver_exe(), "--video", "--global-timeout", "180", "--boot-cache", cache, "--start-scripts", script, "-o",
                             str(bed.out), "--", str(test)],
                            env=bed.env(), cwd=bed.root, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.monotonic() + 180
        while not marker.exists():
            assert proc.poll() is None, (bed.root / "stderr.txt").read_text()
            assert time.monotonic() < deadline, "the script never reached its sleep"
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        status = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = (bed.root / "stderr.txt").read_text()
    assert status == 130, err
    assert "seconds) written to" in err
    check_video(bed.out / "machine.webm", at_least_seconds=1, log=err)


def test_video_goes_on_through_a_restored_snapshot(bed, shared):
    """The QEMU that restores a snapshot is recorded once its state is loaded,
    into the same video: the frames cover the time before and after."""
    require_tools("ffmpeg")
    script, cache = shared
    test = SCRIPT + 'machine.save_snapshot("a")\nmachine.restore_snapshot("a")\ntime.sleep(2)\n'
    r = bed.run_driver(test, args=["--video", "--global-timeout", "180", "--boot-cache", cache, "-o", str(bed.out),
                                   "--start-scripts", script, "--"])
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("video: recording the screen to") == 1, r.stderr  # one video, one ffmpeg
    check_video(bed.out / "machine.webm", at_least_seconds=4, log=r.stderr)
    assert brightest_in_last_frame(bed.out / "machine.webm") > 100
