#!/usr/bin/env bash
# Installs what is missing, builds kiln, and runs the main sample end to end:
# samples/digits (load → validate → clean → split → standardize → train an MLP
# with LibTorch → evaluate on held-out digits → publish to a model repository),
# shows the run, then serves the model with `kiln serve` and asks it for one
# prediction over HTTP (Open Inference Protocol) before stopping the server.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

kiln_install_packages
kiln_build "$KILN_ROOT/build" -DKILN_UNITY=ON -- kiln kiln_util kiln_data kiln_torch kiln_serve
KILN="$KILN_ROOT/build/bin/kiln"
WORKSPACE="$KILN_ROOT/build/demo-workspace"
MODELS="$KILN_ROOT/build/demo-models"

kiln_log "kiln version"
"$KILN" version
kiln_log "kiln plugins list"
"$KILN" plugins list
kiln_log "kiln validate samples/digits/pipeline.yaml"
"$KILN" validate "$KILN_ROOT/samples/digits/pipeline.yaml"
kiln_log "kiln run samples/digits/pipeline.yaml (workspace: build/demo-workspace)"
"$KILN" run "$KILN_ROOT/samples/digits/pipeline.yaml" --workdir "$WORKSPACE" --param model_repo="$MODELS"
kiln_log "kiln runs show latest"
"$KILN" runs show latest --workdir "$WORKSPACE"

kiln_log "kiln serve --model-repo build/demo-models (model 'digits', versions: $(ls "$MODELS/digits" | grep -v json | tr '\n' ' '))"
PORT_FILE="$(mktemp -u)"
"$KILN" serve --model-repo "$MODELS" --port 0 --port-file "$PORT_FILE" --access-log off &
SERVER=$!
trap 'kill -TERM $SERVER 2>/dev/null || true; rm -f "$PORT_FILE"' EXIT
for _ in $(seq 1 300); do [ -s "$PORT_FILE" ] && break; sleep 0.1; done
URL="http://127.0.0.1:$(cat "$PORT_FILE")"
for _ in $(seq 1 300); do curl -sf "$URL/v2/models/digits/ready" >/dev/null && break; sleep 0.1; done
# The first row of the digits CSV: 64 raw pixel values, then the label.
ROW="$(zcat "$KILN_ROOT/samples/data/digits.csv.gz" | sed -n 1p)"
PIXELS="${ROW%,*}"
LABEL="${ROW##*,}"
REQUEST="{\"id\": \"demo-1\", \"inputs\": [{\"name\": \"input\", \"shape\": [1, 64], \"datatype\": \"FP32\", \"data\": [$PIXELS]}]}"
kiln_log "POST $URL/v2/models/digits/infer (a digit labelled $LABEL)"
RESPONSE="$(curl -sS -X POST -H 'Content-Type: application/json' -d "$REQUEST" "$URL/v2/models/digits/infer")"
echo "$RESPONSE"
echo "$RESPONSE" | /usr/bin/python3 -c '
import json, sys
r = json.load(sys.stdin)
p = r["outputs"][0]["data"]
best = max(range(len(p)), key=p.__getitem__)
name, version = r["model_name"], r["model_version"]
print(f"predicted class index {best} with probability {p[best]:.4f} (model {name} version {version})")'
kiln_log "stopping kiln serve (SIGTERM)"
kill -TERM $SERVER
wait $SERVER
trap - EXIT
rm -f "$PORT_FILE"
kiln_log "to watch these runs in a browser (docs/ui.md):"
echo "  $KILN ui --workdir $WORKSPACE --pipelines $KILN_ROOT/samples --models $MODELS"
echo "  then open http://127.0.0.1:8470/ : the runs list, each run's graph with live step states, its timeline,"
echo "  logs and metric curves, artifacts and their lineage, a form that starts the samples, and the digits"
echo "  model (with $KILN serve --model-repo $MODELS running on port 8080, Models > Send asks it for a prediction)."
