"""UEFI variables (upstream's create_efi_vars, write_efi_vars, read_efi_vars,
dump_efi_vars and test_driver.efi.EfiVariable) on the mini guest booted
through OVMF (start-script --efi): a variable the host writes before the boot
is in the guest's /sys/firmware/efi/efivars, and one the guest writes is read
back on the host after it stopped."""
import time
import uuid

import pytest

from conftest import Bed
from test_driver import errors
from test_driver.efi import EfiVariable

VENDOR = uuid.UUID("a19f72f8-b554-4bd7-a0c2-2762bd854691")
EVERYWHERE = EfiVariable.Flags.NON_VOLATILE | EfiVariable.Flags.BOOTSERVICE_ACCESS | EfiVariable.Flags.RUNTIME_ACCESS


def efivar(name):
    return f"/sys/firmware/efi/efivars/{name}-{VENDOR}"


def test_variables_cross_between_host_and_guest(tmp_path, capsys):
    bed = Bed(tmp_path)
    m = bed.machine("mini", name="efi", script_args=["--efi"])
    try:
        m.create_efi_vars()
        with pytest.raises(errors.RequestedAssertionFailed, match="exists"):
            m.create_efi_vars()
        assert m.read_efi_vars() == []
        m.write_efi_vars([EfiVariable(vendor_uuid=VENDOR, name="Demo", data=bytes([0x2a]), flags=EVERYWHERE)])
        m.write_efi_vars([EfiVariable(vendor_uuid=VENDOR, name="Other", data=b"x", flags=EVERYWHERE)])
        assert sorted(v.name for v in m.read_efi_vars()) == ["Demo", "Other"]

        started = time.monotonic()
        m.start()
        m.connect()
        m.log(f"OVMF boot to the backdoor shell: {time.monotonic() - started:.1f} s")
        # efivarfs: the attributes (u32, little-endian) and the data.
        assert m.succeed(f"od -An -tx1 {efivar('Demo')}").split() == ["07", "00", "00", "00", "2a"]
        with pytest.raises(errors.RequestedAssertionFailed, match="currently running"):
            m.read_efi_vars()
        with pytest.raises(errors.RequestedAssertionFailed, match="currently running"):
            m.write_efi_vars([])
        # A new variable, from the guest: one write of attributes and data.
        m.succeed(f"printf '\\x07\\x00\\x00\\x00\\x2b' | dd of={efivar('Guest')} bs=5 status=none")
        assert m.succeed(f"od -An -tx1 {efivar('Guest')}").split() == ["07", "00", "00", "00", "2b"]
        m.crash()

        variables = {(v.vendorUUID, v.name): v for v in m.read_efi_vars()}
        guid = uuid.UUID(bytes=VENDOR.bytes_le)
        guest = variables[(guid, "Guest")]
        assert guest.data == bytes([0x2b]) and not guest.isDeleted
        assert guest.boot_access and guest.runtime_access and not guest.volatile
        assert variables[(guid, "Demo")].data == bytes([0x2a])
        # The firmware's own variables are there too (its boot entries, in the global vendor).
        global_vendor = uuid.UUID(bytes=uuid.UUID("8be4df61-93ca-11d2-aa0d-00e098032b8c").bytes_le)
        assert any(vendor == global_vendor and name.startswith("Boot") for vendor, name in variables)

        capsys.readouterr()
        m.dump_efi_vars()
        dumped = capsys.readouterr().out
        assert f"Guest-{VENDOR}: attributes 0x7" in dumped and "2b" in dumped
    finally:
        m.release()
