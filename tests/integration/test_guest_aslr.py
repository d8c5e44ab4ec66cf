"""TEST_DRIVER_NO_GUEST_ASLR=1, the opt-in for TCG-only CI: a connected
guest's address-space randomisation is off (kernel.randomize_va_space 0);
without it the guest keeps its own setting (2, the kernel's default)."""
import pytest


def randomize_va_space(machine) -> str:
    return machine.succeed("cat /proc/sys/kernel/randomize_va_space").strip()


@pytest.mark.parametrize("value, expected", [("1", "0"), (None, "2"), ("0", "2")], ids=["on", "unset", "zero"])
def test_the_opt_in_turns_off_the_guests_aslr(bed, monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv("TEST_DRIVER_NO_GUEST_ASLR", raising=False)
    else:
        monkeypatch.setenv("TEST_DRIVER_NO_GUEST_ASLR", value)
    m = bed.machine("mini")
    try:
        m.connect()
        assert randomize_va_space(m) == expected
    finally:
        m.release()
