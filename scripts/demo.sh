#!/usr/bin/env bash
# Installs what is missing, builds kiln, and shows it working end to end.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

kiln_install_packages
kiln_build "$KILN_ROOT/build" -DKILN_BUILD_TESTS=OFF
KILN="$KILN_ROOT/build/bin/kiln"

kiln_log "kiln version"
"$KILN" version
kiln_log "kiln plugins list"
"$KILN" plugins list
kiln_log "kiln plugins describe util.echo"
"$KILN" plugins describe util.echo
