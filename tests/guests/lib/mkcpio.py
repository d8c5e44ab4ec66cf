#!/usr/bin/env python3
"""Write a Linux initramfs (cpio "newc" format) without needing root.

Usage: mkcpio.py OUT [--tar TARFILE] [--dir DIR] [--node PATH:TYPE:MAJOR:MINOR:MODE]...

Sources are written in the order given; a later entry with the same name
replaces an earlier one when the kernel unpacks the archive.
  --tar TARFILE  copy all members of a tar archive (owners, modes and
                 device nodes are preserved from the tar headers)
  --dir DIR      copy a directory tree; every entry is owned by root (0:0)
  --node SPEC    add a device node, e.g. /dev/console:c:5:1:600
Hard links are stored as independent copies. Only the standard library is
used, so any python3 works.
"""
import os
import stat
import sys
import tarfile


class CpioWriter:
    def __init__(self, fh):
        self.fh = fh
        self.ino = 1000
        self.seen_dirs = set()

    def _pad(self, n):
        pad = (4 - n % 4) % 4
        if pad:
            self.fh.write(b"\0" * pad)

    def entry(self, name, mode, uid=0, gid=0, mtime=0, data=b"",
              rdevmajor=0, rdevminor=0, nlink=1):
        name = name.lstrip("/")
        if name.startswith("./"):
            name = name[2:]
        if name in ("", "."):
            return
        self.ino += 1
        nameb = name.encode() + b"\0"
        hdr = "070701" + "".join(
            "%08X" % v for v in (
                self.ino, mode, uid, gid, nlink, int(mtime) & 0xFFFFFFFF,
                len(data), 0, 0, rdevmajor, rdevminor, len(nameb), 0))
        self.fh.write(hdr.encode())
        self.fh.write(nameb)
        self._pad(110 + len(nameb))
        self.fh.write(data)
        self._pad(len(data))

    def trailer(self):
        self.ino = 0
        nameb = b"TRAILER!!!\0"
        hdr = "070701" + "".join("%08X" % v for v in (
            0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, len(nameb), 0))
        self.fh.write(hdr.encode())
        self.fh.write(nameb)
        self._pad(110 + len(nameb))

    def add_tar(self, path):
        with tarfile.open(path) as tf:
            members = {}
            for m in tf:
                perm = m.mode & 0o7777
                if m.isdir():
                    self.entry(m.name, stat.S_IFDIR | perm, m.uid, m.gid, m.mtime, nlink=2)
                elif m.isreg():
                    data = tf.extractfile(m).read()
                    members[m.name] = m
                    self.entry(m.name, stat.S_IFREG | perm, m.uid, m.gid, m.mtime, data)
                elif m.issym():
                    self.entry(m.name, stat.S_IFLNK | 0o777, m.uid, m.gid, m.mtime,
                               m.linkname.encode())
                elif m.islnk():
                    target = tf.getmember(m.linkname)
                    data = tf.extractfile(target).read()
                    self.entry(m.name, stat.S_IFREG | (target.mode & 0o7777),
                               target.uid, target.gid, target.mtime, data)
                elif m.ischr() or m.isblk():
                    kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
                    self.entry(m.name, kind | perm, m.uid, m.gid, m.mtime,
                               rdevmajor=m.devmajor, rdevminor=m.devminor)
                elif m.isfifo():
                    self.entry(m.name, stat.S_IFIFO | perm, m.uid, m.gid, m.mtime)

    def add_dir(self, root):
        root = os.path.abspath(root)
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            rel = os.path.relpath(dirpath, root)
            if rel != ".":
                st = os.lstat(dirpath)
                self.entry(rel, stat.S_IFDIR | (st.st_mode & 0o7777), mtime=st.st_mtime, nlink=2)
            # os.walk lists symlinks to directories in dirnames; emit them as links
            for name in sorted(filenames) + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
                full = os.path.join(dirpath, name)
                relf = os.path.normpath(os.path.join(rel, name))
                st = os.lstat(full)
                if stat.S_ISLNK(st.st_mode):
                    self.entry(relf, stat.S_IFLNK | 0o777, mtime=st.st_mtime,
                               data=os.readlink(full).encode())
                elif stat.S_ISREG(st.st_mode):
                    with open(full, "rb") as f:
                        data = f.read()
                    self.entry(relf, stat.S_IFREG | (st.st_mode & 0o7777), mtime=st.st_mtime, data=data)
            dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]

    def add_node(self, spec):
        path, kind, major, minor, mode = spec.split(":")
        ftype = {"c": stat.S_IFCHR, "b": stat.S_IFBLK}[kind]
        self.entry(path, ftype | int(mode, 8), rdevmajor=int(major), rdevminor=int(minor))


def main(argv):
    if len(argv) < 2 or len(argv) % 2 != 0:
        sys.stderr.write(__doc__)
        return 2
    out = argv[1]
    with open(out, "wb") as fh:
        w = CpioWriter(fh)
        args = argv[2:]
        for opt, val in zip(args[::2], args[1::2]):
            if opt == "--tar":
                w.add_tar(val)
            elif opt == "--dir":
                w.add_dir(val)
            elif opt == "--node":
                w.add_node(val)
            else:
                sys.stderr.write("mkcpio.py: unknown option %s\n" % opt)
                return 2
        w.trailer()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
