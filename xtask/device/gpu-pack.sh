#!/usr/bin/env bash
# Pack what the GPU table needs on the device machine (no Rust, no network, at most 64 MiB
# per `run` call, the checkout's own files included). Run here, in the checkout that `run`
# sends, after `cargo build --release -p xtask --features cuda -p transfuse-cli`:
#
#   bash xtask/device/gpu-pack.sh [TARGET_DIR]
#
# It writes (under target/, ignored by git):
#   target/gpuc/p0 ... pN  pieces of ONNX Runtime's CUDA provider, sized to fit beside the
#                          checkout in one call each (from ../shared/tools/ort-gpu-for-device.sh,
#                          which it runs when .ortgpu/ is missing);
#   target/gpuk            the rest of ONNX Runtime's CUDA build and its env.sh, the stripped and
#                          compressed `xtask` and `transfuse`, the Python scripts and
#                          gpu-bench.sh, which runs one part of the table on the device.
# Then, on one warm machine, back to back (it is given back after 30 s idle):
#   run(command="mkdir -p /tmp/chunks && cp target/gpuc/pI/* /tmp/chunks/", carry=["target/gpuc/pI"])  each I
#   run(command="bash target/gpuk/gpu-bench.sh $OUT/NAME.json [models] [options]", carry=["target/gpuk"])
# or gpu-profile.sh, which lists the CUDA kernels where the time goes (see its header).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
release=$(realpath "${1:-target/release}")
top=$(git rev-parse --show-toplevel); cd "$top"
[ -d .ortgpu ] || bash ../shared/tools/ort-gpu-for-device.sh
tree=$( (git ls-files -z; git ls-files -z -o --exclude-standard) | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
room=$(( 64 * 1024 * 1024 - tree - 2 * 1024 * 1024 ))
[ "$room" -gt 8000000 ] || { echo "the checkout ($tree bytes) leaves no room to carry anything" >&2; exit 1; }
rm -rf target/gpuc target/gpuk && mkdir -p target/gpuc target/gpuk/bin target/gpuk/ort
cat .ortgpu/c*/cuda.xz.* | split -b "$room" -d -a 2 - target/gpuc/cuda.xz.
for f in target/gpuc/cuda.xz.*; do d=target/gpuc/p${f##*.}; mkdir -p "$d"; mv "$f" "$d/"; done
cp .ortgpu/c5/rest.zip target/gpuk/ort/
# The pieces are named cuda.xz.00, .01, ...: env.sh joins them in that order.
sed 's#cat /tmp/chunks/cuda.xz.0 /tmp/chunks/cuda.xz.1 /tmp/chunks/cuda.xz.2 /tmp/chunks/cuda.xz.3#cat /tmp/chunks/cuda.xz.*#' \
  .ortgpu/c5/env.sh > target/gpuk/ort/env.sh
grep -q 'cuda.xz.\*' target/gpuk/ort/env.sh || { echo "env.sh changed: cannot point it at the pieces" >&2; exit 1; }
for b in xtask transfuse; do strip -o "target/gpuk/bin/$b" "$release/$b"; xz -T2 -6 -f "target/gpuk/bin/$b"; done
cp -r "$here/../python" target/gpuk/python
cp "$here/gpu-bench.sh" "$here/gpu-profile.sh" "$here/gpu-kit-setup.sh" target/gpuk/
kit=$(du -cb target/gpuk | tail -1 | cut -f1)
[ "$kit" -lt "$room" ] || { echo "target/gpuk ($kit bytes) does not fit beside the checkout" >&2; exit 1; }
ls target/gpuc
du -sh target/gpuc/* target/gpuk
