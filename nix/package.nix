# The C++ NixOS test driver as a nixpkgs package (callPackage-able).
#
#   nixos-test-driver-cpp = pkgs.callPackage ./nix/package.nix { };
#
# It takes the arguments that nixpkgs' NixOS test framework passes to its own
# driver package through `.override` (qemu_pkg, enableOCR, enableNspawn,
# extraPythonPackages) and installs what the framework runs from it:
# bin/nixos-test-driver and bin/generate-driver-symbols. So it can stand in
# for `pkgs.nixos-test-driver`; `passthru.overlay` does that (docs/nix.md).
#
# Not built here (no nixpkgs on the development machines): CI only parses
# this file (nix-instantiate --parse). See docs/nix.md for what was and was
# not tried.
{
  lib,
  stdenv,
  cmake,
  ninja,
  pkg-config,
  makeWrapper,
  python3,
  boost,
  fmt,
  cli11,
  tinyxml2,
  openssl,
  gtest,
  # run time: on the wrapper's PATH
  qemu_test,
  qemu_pkg ? qemu_test,
  vde2,
  socat,
  netpbm,
  coreutils,
  util-linux,
  systemd,
  tesseract4,
  imagemagick_light,
  enableNspawn ? false,
  enableOCR ? false,
  extraPythonPackages ? (_: [ ]),
}:

let
  # The interpreter the driver embeds, with the Python packages test scripts
  # may import (ptpython for -I, as upstream's driver).
  python = python3.withPackages (
    ps:
    [
      ps.colorama
      ps.ptpython
      ps.ipython
    ]
    ++ extraPythonPackages ps
  );
  runtimePath = lib.makeBinPath (
    [
      qemu_pkg
      vde2
      socat
      netpbm
      coreutils
      util-linux
    ]
    ++ lib.optionals enableNspawn [ systemd ]
    ++ lib.optionals enableOCR [
      tesseract4
      imagemagick_light
    ]
  );
  # Only what the build reads: the sources, not build trees or caches.
  src = lib.cleanSourceWith {
    src = ../.;
    filter =
      path: type:
      let
        rel = lib.removePrefix (toString ../. + "/") (toString path);
        top = builtins.head (lib.splitString "/" rel);
      in
      builtins.elem top [
        "CMakeLists.txt"
        "bindings"
        "include"
        "python"
        "src"
        "tests"
        "LICENSE"
      ];
  };
in
stdenv.mkDerivation (finalAttrs: {
  pname = "nixos-test-driver-cpp";
  version = "0.1";
  inherit src;

  nativeBuildInputs = [
    cmake
    ninja
    pkg-config
    makeWrapper
    python3.pkgs.pybind11
  ];
  buildInputs = [
    python
    boost
    fmt
    cli11
    tinyxml2
    openssl
    gtest
  ];

  cmakeFlags = [
    "-DPython_EXECUTABLE=${python.interpreter}"
    # Where the embedded interpreter looks for the test_driver package.
    "-DTD_PYTHON_INSTALL_DIR=${python3.sitePackages}"
  ];

  doCheck = true;
  # The unit tests only: the integration tests boot guest images that are
  # built from Debian packages (tests/guests), not available in the sandbox.
  checkPhase = ''
    runHook preCheck
    tests/td_unit_tests
    runHook postCheck
  '';

  postInstall = ''
    wrapProgram $out/bin/nixos-test-driver \
      --prefix PATH : ${runtimePath} \
      --prefix PYTHONPATH : $out/${python3.sitePackages}:${python}/${python.sitePackages}
    # What nixpkgs' NixOS test framework calls to lint test scripts.
    makeWrapper $out/bin/nixos-test-driver $out/bin/generate-driver-symbols \
      --add-flags --generate-driver-symbols
  '';

  passthru = {
    inherit python;
    # An overlay that makes this package the NixOS test framework's driver:
    # pkgs.nixos-test-driver, which nixos/lib/testing/driver.nix takes as
    # pythonTestDriverPackage and overrides with qemu_pkg, enableOCR,
    # enableNspawn and extraPythonPackages.
    overlay = final: prev: {
      nixos-test-driver = final.callPackage ./package.nix { };
    };
  };

  meta = {
    description = "A C++ reimplementation of the NixOS test driver";
    license = lib.licenses.mit;
    platforms = lib.platforms.linux;
    mainProgram = "nixos-test-driver";
  };
})
