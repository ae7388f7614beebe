#!/usr/bin/env bash
# One-stop, idempotent set-up used by `npm test`, `npm run demo` and the benchmarks:
#   1. Debian packages (libtorch, OpenBLAS, build tools, Fashion-MNIST) when missing;
#   2. npm dependencies when package-lock.json changed;
#   3. the native addon when its sources changed.
# Takes a few seconds when everything is already in place.
# Environment:
#   BADEXPERT_LIBTORCH=/path/to/libtorch   build against another libtorch (e.g. a CUDA build)
#   BADEXPERT_SKIP_APT=1                    never call apt-get (just report what is missing)
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[setup] %s\n' "$*" >&2; }

# Packages the project needs from Debian. libtorch-dev brings libtorch; OpenBLAS makes its
# matrix products ~50x faster than the reference BLAS; the dataset feeds the demo and tests;
# chromium is the headless browser of the service dashboard's test (driven by playwright-core).
packages=(libtorch-dev libopenblas0-pthread g++ make python3 dataset-fashion-mnist chromium)
if [ -n "${BADEXPERT_LIBTORCH:-}" ]; then
  packages=(libopenblas0-pthread g++ make python3 dataset-fashion-mnist chromium)
fi

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for p in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "${BADEXPERT_SKIP_APT:-}" = "1" ]; then
      say "missing Debian packages: ${missing[*]} (BADEXPERT_SKIP_APT=1, not installing)"
      exit 1
    elif [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null 2>&1; then
      say "missing Debian packages: ${missing[*]}"
      say "run as root:  apt-get update && apt-get install -y ${missing[*]}"
      exit 1
    else
      SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
      say "installing Debian packages: ${missing[*]}"
      $SUDO apt-get update -qq
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
  fi
else
  say "this is not a Debian/Ubuntu system (no dpkg-query)."
  say "install by hand: libtorch (C++ library and headers, 1.13+), OpenBLAS, a C++17 compiler, make, python3;"
  say "then set BADEXPERT_LIBTORCH to the libtorch prefix (the folder holding include/ and lib/)."
  [ -n "${BADEXPERT_LIBTORCH:-}" ] || exit 1
fi

# npm dependencies: reinstall only when the lock file is newer than the installed tree.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm dependencies (npm ci)"
  # onnxruntime-node ships its CPU binaries inside the npm package; without "skip" its install
  # script would also fetch CUDA provider binaries from NuGet (unreachable here, unused on CPU).
  ONNXRUNTIME_NODE_INSTALL="${ONNXRUNTIME_NODE_INSTALL:-skip}" npm ci --no-audit --no-fund --loglevel=error
fi

bash scripts/build-native.sh
