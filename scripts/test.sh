#!/usr/bin/env bash
# Installs what is missing, builds kiln with its tests, and runs the whole
# suite through ctest: once in a normal build (warnings are errors), once in
# an AddressSanitizer + UndefinedBehaviorSanitizer build; then every fuzz
# harness for a short while (scripts/fuzz.sh, docs/fuzzing.md).
# KILN_SKIP_SANITIZERS=1 skips the second pass, KILN_SKIP_FUZZ=1 the fuzzing
# (for quick local runs; CI sets neither).
# No test may skip here: KILN_TEST_NO_SKIPS=1 turns a test's "cannot check
# this here" (no runc, not root, no python3-torch) into a failure.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

kiln_install_packages --test
jobs="$(nproc)"
export KILN_TEST_NO_SKIPS=1

kiln_build "$KILN_ROOT/build" -DKILN_WERROR=ON -DKILN_BUILD_TESTS=ON
kiln_log "running the test suite"
ctest --test-dir "$KILN_ROOT/build" --output-on-failure -j "$jobs"

if [ "${KILN_SKIP_SANITIZERS:-0}" != "1" ]; then
  kiln_build "$KILN_ROOT/build-asan" -DKILN_WERROR=ON -DKILN_BUILD_TESTS=ON -DKILN_SANITIZE=ON
  kiln_log "running the test suite under ASan and UBSan"
  # Sanitizers make loading LibTorch's plugin several times slower: give the
  # catalog's scan more than its 10 s default so a busy machine cannot drop it.
  KILN_SCAN_TIMEOUT_MS=60000 ctest --test-dir "$KILN_ROOT/build-asan" --output-on-failure -j "$jobs"
fi

if [ "${KILN_SKIP_FUZZ:-0}" != "1" ]; then
  kiln_log "fuzzing every parser of untrusted input (scripts/fuzz.sh)"
  "$KILN_ROOT/scripts/fuzz.sh"
fi
