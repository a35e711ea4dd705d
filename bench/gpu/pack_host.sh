#!/usr/bin/env bash
# Packs a kiln host build (bin/kiln, lib/kiln/plugins) with the shared
# libraries it needs beyond glibc and libstdc++ into a tarball, for a GPU
# machine of another distribution (bench/gpu/run.sh with KILN_HOST=<unpacked>;
# run it with LD_LIBRARY_PATH=<unpacked>/lib). The torch plugin is not
# packed: run.sh builds it there against that machine's LibTorch.
#
#   bench/gpu/pack_host.sh [BUILD_DIR] [OUT.tar.xz]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "${1:-$ROOT/build}" && pwd)
OUT=$(realpath -m "${2:-kiln-host.tar.xz}")
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/kiln-host/bin" "$STAGE/kiln-host/lib/kiln/plugins"
cp "$BUILD/bin/kiln" "$STAGE/kiln-host/bin/"
for plugin in "$BUILD"/lib/kiln/plugins/*.so; do
  case $(basename "$plugin") in kiln_torch.so) continue ;; esac
  cp "$plugin" "$STAGE/kiln-host/lib/kiln/plugins/"
done
strip "$STAGE/kiln-host/bin/kiln" "$STAGE"/kiln-host/lib/kiln/plugins/*.so
for binary in "$STAGE/kiln-host/bin/kiln" "$STAGE"/kiln-host/lib/kiln/plugins/*.so; do
  ldd "$binary" | awk '/=> \// { print $3 }'
done | sort -u | grep -Ev '/(libc|libm|libpthread|libdl|librt|ld-linux[^/]*|libgcc_s|libstdc\+\+)\.so' |
  while read -r lib; do cp -L "$lib" "$STAGE/kiln-host/lib/"; done
tar -C "$STAGE" -cJf "$OUT" kiln-host
echo "$OUT: $(du -h "$OUT" | cut -f1)"
