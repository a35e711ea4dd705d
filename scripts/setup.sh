#!/usr/bin/env bash
# Shared set-up for demo.sh and test.sh: install the Debian packages kiln
# needs (only the missing ones, quietly), then configure and build.
# Usage: source scripts/setup.sh; kiln_install_packages [--test|--bench]; kiln_build BUILD_DIR [cmake args...]
set -euo pipefail

KILN_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KILN_PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config
  libboost-dev libpoco-dev libyaml-cpp-dev nlohmann-json3-dev libcli11-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libarchive-dev libssl-dev
  # kiln serve's HTTP request parser (nodejs http-parser)
  libhttp-parser-dev
  zlib1g-dev libtorch-dev
  # Gloo's headers: LibTorch's c10d ProcessGroupGloo header includes them
  # (train.torch's replicas; libtorch links libgloo0 already)
  libgloo-dev
  # LibTorch calls the system BLAS (libblas.so.3); without this it is the
  # reference BLAS, 11x slower at sgemm here. The OpenMP flavour shares
  # LibTorch's thread pool instead of adding its own.
  libopenblas0-openmp
  dataset-fashion-mnist
  runc umoci
)

# Only the test suite needs these (scripts/test.sh), never the product or demo.sh:
# python3-torch exports a TorchScript model from PyTorch for kiln serve's test;
# the openssl command makes the registry's TLS test certificates; clang and its
# sanitizer/libFuzzer runtimes build the fuzz harnesses (scripts/fuzz.sh);
# headless Chromium, its WebDriver and Selenium run kiln ui's browser tests
# (tests/ui_browser), with a font for readable screenshots; Slurm and munge
# run the one-node cluster of the Slurm executor's tests (scripts/slurm-local.sh);
# jsonschema, yaml and protobuf check `kiln compile`'s output against Argo's
# schema and KFP's proto (tests/conformance).
KILN_TEST_PACKAGES=(python3-torch openssl clang libclang-rt-14-dev
                    chromium chromium-driver python3-selenium fonts-liberation
                    slurm-wlm slurmctld slurmd slurm-client munge
                    python3-jsonschema python3-yaml protobuf-compiler libprotobuf-dev python3-protobuf)

# Optional: only the benchmarks need these (bench/serve/serve_http.sh; Optuna,
# its CMA-ES and numpy for bench/tuning/compare.py), never the product.
KILN_BENCH_PACKAGES=(wrk nginx-light python3-optuna python3-cmaes python3-numpy)

kiln_log() { printf '==> [%s, %ds] %s\n' "$(date -u +%H:%M:%S)" "$SECONDS" "$*"; }

kiln_install_packages() {
  local missing=() wanted=("${KILN_PACKAGES[@]}")
  [ "${1:-}" = "--test" ] && wanted+=("${KILN_TEST_PACKAGES[@]}")
  [ "${1:-}" = "--bench" ] && wanted=("${KILN_BENCH_PACKAGES[@]}")
  for pkg in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  kiln_log "installing Debian packages: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  # Packages such as munge and slurmd would start their system daemons on
  # install; kiln starts its own (scripts/slurm-local.sh), so no service starts.
  local policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null && $sudo chmod 755 "$policy"
  fi
  $sudo apt-get update -qq
  local rc=0
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
  [ -z "$policy" ] || $sudo rm -f "$policy"
  return $rc
}

# kiln_build DIR [extra cmake args] [-- targets]: configure and build with all cores.
kiln_build() {
  local dir="$1"; shift
  local args=() targets=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do args+=("$1"); shift; done
  [ "${1:-}" = "--" ] && shift && targets=("$@")
  kiln_log "configuring and building in ${dir#"$KILN_ROOT"/}"
  cmake -S "$KILN_ROOT" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "${args[@]}" >/dev/null
  cmake --build "$dir" --parallel "$(nproc)" ${targets[@]:+--target "${targets[@]}"}
}
