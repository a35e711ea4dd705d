#!/usr/bin/env bash
# Installs what is missing, then checks kiln three ways:
#   1. the product (kiln, its step server, every plugin) in the normal
#      optimised build, warnings as errors: what demo.sh and users build;
#   2. the whole test suite through ctest in an AddressSanitizer +
#      UndefinedBehaviorSanitizer build (build-asan/, also -Werror), and in the
#      normal build the one test ASan cannot hold (an address-space rlimit);
#   3. every fuzz harness for a short while (scripts/fuzz.sh, docs/fuzzing.md).
# The suite runs once, in the sanitizer build, which checks what a normal run
# checks and more: CI has 2 cores and 45 minutes, and a second build of the
# tests plus a second run cost ~20 of them (docs/benchmarks.md, CI time).
# KILN_TEST_NORMAL=1 also runs the suite in the normal build (with tests),
# KILN_SKIP_SANITIZERS=1 skips the sanitizer build (then the suite runs in the
# normal one), KILN_SKIP_FUZZ=1 the fuzzing: for quick local runs; CI sets none.
# No test may skip here: KILN_TEST_NO_SKIPS=1 turns a test's "cannot check
# this here" (no runc, not root, no python3-torch) into a failure.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

kiln_install_packages --test
jobs="$(nproc)"
export KILN_TEST_NO_SKIPS=1

if [ "${KILN_TEST_NORMAL:-0}" = "1" ] || [ "${KILN_SKIP_SANITIZERS:-0}" = "1" ]; then
  kiln_build "$KILN_ROOT/build" -DKILN_WERROR=ON -DKILN_UNITY=ON -DKILN_BUILD_TESTS=ON
  kiln_log "running the test suite"
  ctest --test-dir "$KILN_ROOT/build" --output-on-failure -j "$jobs"
else
  kiln_build "$KILN_ROOT/build" -DKILN_WERROR=ON -DKILN_UNITY=ON -DKILN_BUILD_TESTS=OFF
fi

if [ "${KILN_SKIP_SANITIZERS:-0}" != "1" ]; then
  kiln_build "$KILN_ROOT/build-asan" -DKILN_WERROR=ON -DKILN_UNITY=ON -DKILN_BUILD_TESTS=ON -DKILN_SANITIZE=ON
  kiln_log "running the test suite under ASan and UBSan"
  # Sanitizers make loading LibTorch's plugin several times slower: give the
  # catalog's scan more than its 10 s default so a busy machine cannot drop it.
  KILN_SCAN_TIMEOUT_MS=60000 ctest --test-dir "$KILN_ROOT/build-asan" --output-on-failure -j "$jobs"
fi

if [ "${KILN_TEST_NORMAL:-0}" != "1" ] && [ "${KILN_SKIP_SANITIZERS:-0}" != "1" ]; then
  # The one test the sanitizer build cannot hold (an address-space rlimit is
  # smaller than ASan's shadow reservation: tests/container_test.cpp) runs in
  # the normal build, so that CI checks it too.
  kiln_build "$KILN_ROOT/build" -DKILN_WERROR=ON -DKILN_UNITY=ON -DKILN_BUILD_TESTS=ON -- container_test
  kiln_log "running the test the sanitizer build cannot hold, in the normal build"
  ctest --test-dir "$KILN_ROOT/build" -R '^ContainerTest[.]WithoutWritableCgroupsMemoryFallsBackToAnRlimit$' \
    --output-on-failure --no-tests=error
fi

if [ "${KILN_SKIP_FUZZ:-0}" != "1" ]; then
  kiln_log "fuzzing every parser of untrusted input (scripts/fuzz.sh)"
  "$KILN_ROOT/scripts/fuzz.sh"
fi
kiln_log "all checks passed"
