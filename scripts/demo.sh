#!/usr/bin/env bash
# Installs what is missing, builds kiln, and runs the main sample end to end:
# samples/digits (load → validate → clean → split → standardize → train an MLP
# with LibTorch → evaluate on held-out digits), then shows the run and its metrics.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

kiln_install_packages
kiln_build "$KILN_ROOT/build" -- kiln kiln_util kiln_data kiln_torch
KILN="$KILN_ROOT/build/bin/kiln"
WORKSPACE="$KILN_ROOT/build/demo-workspace"

kiln_log "kiln version"
"$KILN" version
kiln_log "kiln plugins list"
"$KILN" plugins list
kiln_log "kiln validate samples/digits/pipeline.yaml"
"$KILN" validate "$KILN_ROOT/samples/digits/pipeline.yaml"
kiln_log "kiln run samples/digits/pipeline.yaml (workspace: build/demo-workspace)"
"$KILN" run "$KILN_ROOT/samples/digits/pipeline.yaml" --workdir "$WORKSPACE"
kiln_log "kiln runs show latest"
"$KILN" runs show latest --workdir "$WORKSPACE"
