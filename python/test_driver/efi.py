"""UEFI variables of a machine's OVMF variable store (upstream's
test_driver.efi): EfiVariable, what Machine.read_efi_vars() returns and
Machine.write_efi_vars() takes. Upstream builds it on ovmfvartool's
AuthenticatedVariable; here the store is read and written by the core
(include/test_driver/efi_vars.h), and EfiVariable keeps ovmfvartool's
attribute names: vendorUUID, name, data, flags, state, monotonicCount,
timestamp, pubKeyIdx, nameLen, dataLen, isDeleted and print().
"""
from __future__ import annotations

import uuid

from test_driver import _core

__all__ = ["EfiVariable"]

# The attribute bits upstream turns into booleans (ovmfvartool's).
_FLAG_NAMES = [
    (0x2, "boot_access"),
    (0x4, "runtime_access"),
    (0x8, "hardware_error_record"),
    (0x10, "authenticated_write_access"),
    (0x20, "time_based_authenticated_write_access"),
    (0x40, "append_write"),
]
_KNOWN_FLAGS = 0x7F
_LIVE_STATES = (0x3F, 0x3F & 0xFE)


class EfiVariable:
    """One UEFI variable. `vendorUUID` is a uuid.UUID made from the GUID's
    bytes as the store holds them (uuid.UUID(bytes=vendor_uuid.bytes_le)),
    as ovmfvartool has it; the constructor takes the vendor's uuid.UUID.
    `state`, given, is stored xor 0xFF (as upstream's); the default is an
    added variable. After a read, `flags` keeps only the attribute bits that
    have no boolean (volatile, boot_access, ...), as upstream's; writing
    puts the booleans back."""

    class Flags:
        NON_VOLATILE = 0x1
        BOOTSERVICE_ACCESS = 0x2
        RUNTIME_ACCESS = 0x4
        TIME_BASED_AUTHENTICATED_WRITE_ACCESS = 0x20

    class State:
        VAR_HEADER_VALID_ONLY = 0x7F
        VAR_ADDED = 0x3F

    volatile = False
    boot_access = False
    runtime_access = False
    hardware_error_record = False
    authenticated_write_access = False
    time_based_authenticated_write_access = False
    append_write = False

    def __init__(self, vendor_uuid: uuid.UUID | None = None, name: str | None = None, data: bytes | None = None,
                 state: int | None = None, flags: int | None = None) -> None:
        self.magic = 0x55AA
        self.reserved1 = 0
        self.monotonicCount = 0
        self.timestamp = bytes(16)
        self.pubKeyIdx = 0
        self.vendorUUID = uuid.UUID(int=0)
        self.name = ""
        self.nameLen = 2
        self.data = b""
        self.dataLen = 0
        self.state = (state ^ 0xFF) if state is not None else (0x40 | 0x80) ^ 0xFF
        self.flags = flags if flags is not None else 0
        if vendor_uuid is not None:
            self.vendorUUID = uuid.UUID(bytes=vendor_uuid.bytes_le)
        if name is not None:
            self.name = name
            self.nameLen = len(name.encode("utf-16-le")) + 2
        if data is not None:
            self.data = bytes(data)
            self.dataLen = len(self.data)

    @property
    def isDeleted(self) -> bool:  # noqa: N802 (ovmfvartool's name)
        return self.state not in _LIVE_STATES

    @property
    def attributes(self) -> int:
        """The attribute bits as the store holds them (flags and the booleans)."""
        bits = self.flags
        if self._read_from_store and not self.volatile:
            bits |= 0x1
        for bit, attr in _FLAG_NAMES:
            if getattr(self, attr):
                bits |= bit
        return bits

    _read_from_store = False

    @classmethod
    def _from_record(cls, record: _core.EfiStoreRecord) -> EfiVariable:
        v = cls()
        v._read_from_store = True
        v.vendorUUID = uuid.UUID(bytes=bytes(record.vendor))
        v.name = record.name
        v.nameLen = len(record.name.encode("utf-16-le")) + 2
        v.data = bytes(record.data)
        v.dataLen = len(v.data)
        v.state = record.state
        v.monotonicCount = record.monotonic_count
        v.timestamp = bytes(record.timestamp)
        v.pubKeyIdx = record.pubkey_index
        bits = record.attributes
        v.volatile = not bits & 0x1
        for bit, attr in _FLAG_NAMES:
            setattr(v, attr, bool(bits & bit))
        v.flags = bits & ~_KNOWN_FLAGS
        return v

    def _to_record(self) -> _core.EfiStoreRecord:
        r = _core.EfiStoreRecord()
        r.vendor = self.vendorUUID.bytes
        r.name = self.name
        r.data = bytes(self.data)
        r.attributes = self.attributes
        r.state = self.state
        r.monotonic_count = self.monotonicCount
        r.timestamp = bytes(self.timestamp)
        r.pubkey_index = self.pubKeyIdx
        return r

    def __repr__(self) -> str:
        vendor = uuid.UUID(bytes_le=self.vendorUUID.bytes)
        return f"EfiVariable({vendor}, {self.name!r}, {self.data!r}, attributes={self.attributes:#x})"

    def print(self) -> None:
        """Print the variable: vendor, name, attributes, state and data (hex)."""
        vendor = uuid.UUID(bytes_le=self.vendorUUID.bytes)
        print(f"{self.name}-{vendor}: attributes {self.attributes:#x}, state {self.state:#04x}"
              f"{' (deleted)' if self.isDeleted else ''}, {self.dataLen} bytes: {self.data.hex()}")
