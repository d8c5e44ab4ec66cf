#!/bin/sh
# mmdebstrap --customize-hook for the x11 guest, run after the systemd guest's; $1 is the root.
set -eu
root=$1
chmod 755 "$root/usr/local/bin/td-xsession"
chroot "$root" systemctl enable display-manager.service x-session.service
chroot "$root" systemctl set-default graphical.target
# xterm's default look for the tests: a large outline font (OCR reads it), black on white.
cat >> "$root/etc/X11/app-defaults/XTerm" <<'XEOF'
*faceName: DejaVu Sans Mono
*faceSize: 16
*VT100.background: white
*VT100.foreground: black
XEOF
