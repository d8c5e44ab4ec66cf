#!/bin/sh
# mmdebstrap --customize-hook for the systemd guest; $1 is the root directory.
# The overlay/ files and common/ scripts have already been copied in.
set -eu
root=$1
in_root() { chroot "$root" "$@"; }

chmod 755 "$root/usr/local/bin/td-backdoor" "$root/usr/local/bin/td-netconfig"
mkdir -p "$root/tmp/shared" "$root/tmp/xchg" "$root/root"

# fresh (transient) machine id per boot, no first-boot presets
: > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
echo guest > "$root/etc/hostname"
# /bin/sh is bash on NixOS, and the driver's commands rely on it (the
# `systemctl --user` path uses $'...' quoting under `sh -c`).
ln -sf bash "$root/bin/sh"

in_root systemctl enable backdoor.service td-netconfig.service
# no root password; autologin on tty1 only
in_root passwd -d root
in_root useradd --create-home --shell /bin/bash --uid 1000 alice
mkdir -p "$root/var/lib/systemd/linger"
touch "$root/var/lib/systemd/linger/alice"

# trim what slows the boot down
for u in apt-daily.timer apt-daily-upgrade.timer man-db.timer e2scrub_all.timer \
         e2scrub_reap.service fstrim.timer dpkg-db-backup.timer logrotate.timer \
         systemd-networkd-wait-online.service systemd-networkd.service \
         systemd-timesyncd.service cron.service; do
    if [ -e "$root/lib/systemd/system/$u" ]; then
        in_root systemctl disable "$u" >/dev/null 2>&1 || true
        in_root systemctl mask "$u" >/dev/null 2>&1 || true
    fi
done
for u in serial-getty@ttyS0.service serial-getty@hvc0.service getty@tty2.service \
         getty@tty3.service getty@tty4.service getty@tty5.service getty@tty6.service \
         systemd-firstboot.service systemd-hwdb-update.service \
         systemd-journal-catalog-update.service systemd-update-done.service \
         ldconfig.service getty-static.service; do
    ln -sf /dev/null "$root/etc/systemd/system/$u"
done
mkdir -p "$root/etc/systemd/logind.conf.d"
printf '[Login]\nNAutoVTs=1\nReserveVT=0\n' > "$root/etc/systemd/logind.conf.d/td.conf"

# hardware database and apt caches are not needed in a test VM
rm -f "$root/usr/lib/udev/hwdb.bin" "$root/etc/udev/hwdb.bin"
rm -rf "$root/usr/lib/udev/hwdb.d" "$root/var/cache/apt/"*.bin "$root/var/lib/apt/lists/"*_Packages* 2>/dev/null || true
