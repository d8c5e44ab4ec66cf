# The builder of one test derivation (nix/tests.nix): runs the driver on the
# test script inside the Nix sandbox. $out gets the XML log (log.xml), the
# JUnit report (junit.xml) and whatever the script copies out (screenshots,
# copy_from_vm). A failing test exits non-zero, which fails the derivation;
# the driver's error is in the build log (its stderr).
set -euo pipefail
mkdir -p "$out" "$TMPDIR/vms"
start_scripts=()
for m in $machines; do
  start_scripts+=("$(/bin/bash "$startScript" "$image" "$m" "$TMPDIR/vms" | tail -n 1)")
done
export ACCEL=$accel PYTHONPATH=$pythonPath LOGFILE=$out/log.xml
cd "$TMPDIR"
# Each line starts with the script's name: parallel builds' logs interleave.
# (pipefail: the build's status is the driver's.)
"$driver" --start-scripts "${start_scripts[@]}" -o "$out" --junit-xml junit.xml -- "$testScript" 2>&1 |
  sed -u "s/^/$scriptName> /"
