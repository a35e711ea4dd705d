#!/usr/bin/env bash
# Installs what is missing, builds kiln, and shows it working end to end.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

kiln_install_packages
kiln_build "$KILN_ROOT/build" -- kiln kiln_util
KILN="$KILN_ROOT/build/bin/kiln"

kiln_log "kiln version"
"$KILN" version
kiln_log "kiln plugins list"
"$KILN" plugins list
kiln_log "kiln validate samples/hello/pipeline.yaml"
"$KILN" validate "$KILN_ROOT/samples/hello/pipeline.yaml"
kiln_log "kiln run samples/hello/pipeline.yaml (workspace: build/demo-workspace)"
"$KILN" run "$KILN_ROOT/samples/hello/pipeline.yaml" --workdir "$KILN_ROOT/build/demo-workspace" \
  --param names='[ada, grace, linus, barbara]'
kiln_log "kiln runs show latest"
"$KILN" runs show latest --workdir "$KILN_ROOT/build/demo-workspace"
