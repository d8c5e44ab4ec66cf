#!/bin/sh
# mmdebstrap --customize-hook for the container image; $1 is the root
# directory. The overlay/ files have already been copied in. The driver
# reaches the container's root shell with nsenter, so there is no backdoor
# service; everything else is as in the systemd guest.
set -eu
root=$1
in_root() { chroot "$root" "$@"; }

mkdir -p "$root/tmp/shared" "$root/tmp/xchg" "$root/root"
: > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
echo container > "$root/etc/hostname"
# /bin/sh is bash on NixOS, and the driver's commands rely on it.
ln -sf bash "$root/bin/sh"

in_root passwd -d root
in_root useradd --create-home --shell /bin/bash --uid 1000 alice
mkdir -p "$root/var/lib/systemd/linger"
touch "$root/var/lib/systemd/linger/alice"

for u in apt-daily.timer apt-daily-upgrade.timer man-db.timer e2scrub_all.timer \
         e2scrub_reap.service fstrim.timer dpkg-db-backup.timer logrotate.timer \
         systemd-networkd-wait-online.service systemd-networkd.service \
         systemd-timesyncd.service cron.service; do
    if [ -e "$root/lib/systemd/system/$u" ]; then
        in_root systemctl disable "$u" >/dev/null 2>&1 || true
        in_root systemctl mask "$u" >/dev/null 2>&1 || true
    fi
done
# nothing may hold the console: it carries the journal to the driver
# /tmp stays the image's: a tmpfs mounted by systemd would hide the shares nspawn binds
# at /tmp/shared and /tmp/xchg (NixOS does not mount one either by default)
for u in tmp.mount console-getty.service container-getty@.service getty@.service \
         systemd-firstboot.service systemd-journal-catalog-update.service \
         systemd-update-done.service ldconfig.service getty-static.service; do
    ln -sf /dev/null "$root/etc/systemd/system/$u"
done
rm -rf "$root/var/cache/apt/"*.bin "$root/var/lib/apt/lists/"*_Packages* 2>/dev/null || true
