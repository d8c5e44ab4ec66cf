#!/usr/bin/env python3
"""Writes the uncompressed kernel (an ELF vmlinux) held in a bzImage.

    extract-vmlinux.py BZIMAGE VMLINUX

Like the kernel's scripts/extract-vmlinux: finds the compressed payload by
its magic (xz or gzip, what Debian's kernels use) and unpacks it. QEMU boots
such an ELF through its PVH entry point, which skips the kernel unpacking
itself: slow under TCG (seconds).
"""
import gzip
import lzma
import sys
import zlib

MAGICS = [(b"\xfd7zXZ\x00", "xz"), (b"\x1f\x8b\x08", "gzip")]


def unpack(data: bytes, start: int, kind: str) -> bytes:
    if kind == "xz":
        return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data[start:])
    return zlib.decompressobj(wbits=16 + zlib.MAX_WBITS).decompress(data[start:])


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    data = open(sys.argv[1], "rb").read()
    for magic, kind in MAGICS:
        start = data.find(magic)
        while start >= 0:
            try:
                out = unpack(data, start, kind)
            except (lzma.LZMAError, zlib.error, gzip.BadGzipFile, EOFError):
                out = b""
            if out.startswith(b"\x7fELF"):
                with open(sys.argv[2], "wb") as f:
                    f.write(out)
                return 0
            start = data.find(magic, start + 1)
    print(f"extract-vmlinux: no xz or gzip payload holding an ELF kernel in {sys.argv[1]}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
