#!/usr/bin/env bash
# Builds the release `vigil` binary exactly as the image's build stage does (deploy/Dockerfile
# runs this script), so a binary that builds here is the binary the image ships.
#
#   deploy/build-binary.sh [OUT_DIR]
#
# With OUT_DIR, the binary is also copied to OUT_DIR/vigil (the Dockerfile copies it out of a
# cache-mounted target directory this way). CARGO_TARGET_DIR is honoured as cargo honours it.
set -euo pipefail
cd "$(dirname "$0")/.."

# --locked: the image is built from Cargo.lock as committed, never from a fresh resolution.
cargo build --release --locked --bin vigil

target_dir="${CARGO_TARGET_DIR:-target}"
binary="$target_dir/release/vigil"
if [ "$#" -ge 1 ]; then
  mkdir -p "$1"
  cp "$binary" "$1/vigil"
  binary="$1/vigil"
fi
echo "built $binary"
