#!/usr/bin/env bash
# Fetches the web UI's vendored libraries from the npm registry (npm pack:
# the registry's tarball, checked against its integrity field by npm) into
# host/ui/web/vendor/ and records name, version, licence and sha256 in
# host/ui/web/vendor/VENDOR.json. Run by hand when a version changes, never
# at build time: the files are committed. Needs npm (Debian's `npm`).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/host/ui/web/vendor"
UPLOT=uplot@1.6.32
DAGRE=@dagrejs/dagre@3.1.3
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$DEST"
(cd "$TMP" && npm pack --silent "$UPLOT" "$DAGRE" >/dev/null)
for tgz in "$TMP"/*.tgz; do
  dir="$TMP/$(basename "$tgz" .tgz)"
  mkdir -p "$dir" && tar xzf "$tgz" -C "$dir" --strip-components=1
done
cp "$TMP"/uplot-*/dist/uPlot.esm.js "$TMP"/uplot-*/dist/uPlot.min.css "$TMP"/uplot-*/LICENSE "$DEST/"
mv "$DEST/LICENSE" "$DEST/uPlot.LICENSE"
cp "$TMP"/dagrejs-dagre-*/dist/dagre.esm.js "$DEST/dagre.esm.js"
cp "$TMP"/dagrejs-dagre-*/LICENSE "$DEST/dagre.LICENSE"
/usr/bin/python3 - "$TMP" "$DEST" <<'PY'
import hashlib, json, pathlib, sys
tmp, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
entries = []
for pkg in sorted(tmp.glob("*/package.json")):
    meta = json.loads(pkg.read_text())
    files = {"uplot": ["uPlot.esm.js", "uPlot.min.css", "uPlot.LICENSE"],
             "@dagrejs/dagre": ["dagre.esm.js", "dagre.LICENSE"]}[meta["name"]]
    tarball = next(tmp.glob(pkg.parent.name + ".tgz"))
    entries.append({
        "name": meta["name"], "version": meta["version"], "license": meta.get("license", ""),
        "source": f"https://registry.npmjs.org/{meta['name']}/-/{meta['name'].split('/')[-1]}-{meta['version']}.tgz",
        "tarball_sha256": hashlib.sha256(tarball.read_bytes()).hexdigest(),
        "files": {f: hashlib.sha256((dest / f).read_bytes()).hexdigest() for f in files},
    })
(dest / "VENDOR.json").write_text(json.dumps(entries, indent=2) + "\n")
PY
cat "$DEST/VENDOR.json"
