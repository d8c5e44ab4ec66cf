# The test scripts of one `nix/sandbox-run` call, as derivations: one per
# script, each built in its own Nix sandbox by nix/sandbox-builder.sh.
#
# `spec` is a JSON file written by nix/sandbox-run:
#   { "scripts": [ { "name": ..., "path": ... } ... ],
#     "driver": ..., "pythonPath": ..., "startScript": ..., "image": ...,
#     "machines": [ ... ], "accel": ..., "fingerprint": ... }
# The driver, its Python package, the start-script generator and the guest
# image are host paths that the sandbox sees through extra-sandbox-paths
# (they are not in the Nix store); `fingerprint` (their hashes) is part of
# each derivation, so that a new driver or image builds the tests again.
{ spec }:
let
  s = builtins.fromJSON (builtins.readFile spec);
  test = script: derivation {
    name = "nixos-test-${script.name}";
    system = builtins.currentSystem;
    builder = "/bin/bash";
    args = [ ./sandbox-builder.sh ];
    # The sandbox sets no PATH; the host's tools come from extra-sandbox-paths.
    PATH = "/usr/bin:/bin:/usr/sbin:/sbin";
    testScript = builtins.path { path = /. + script.path; name = "${script.name}.py"; };
    scriptName = script.name;
    inherit (s) driver pythonPath startScript image accel fingerprint;
    machines = builtins.concatStringsSep " " s.machines;
  };
in
  builtins.listToAttrs (map (script: { name = script.name; value = test script; }) s.scripts)
