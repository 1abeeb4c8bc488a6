#!/usr/bin/env bash
# `cargo xtask bench` on the device machine (16 cores and a GPU; no network, no Rust toolchain).
#
# Run from the repository root there, once ONNX Runtime's GPU build is unpacked from
# /tmp/chunks (see ../shared/tools/ort-gpu-for-device.sh), with a release binary built here
# (`cargo build --release -p xtask --features cuda`) carried along:
#
#   xtask/bench/device.sh BINARY cpu  OUTDIR   # materialize the models, optimize (transfuse and
#                                              # the peer), CPU at 16 threads with --profile
#   xtask/bench/device.sh BINARY cuda OUTDIR   # GPU; reuses the optimized models of the cpu step
#
# Results: OUTDIR/cpu-16t.json, OUTDIR/cuda-16t.json and their logs; publish them here with
# `cargo xtask bench --merge OUTDIR/cpu-16t.json --merge OUTDIR/cuda-16t.json`.
set -uo pipefail
bin=$1
mode=$2
out=$3
mkdir -p "$out"
# shellcheck disable=SC1091
source /tmp/chunks/env.sh || { echo "no /tmp/chunks/env.sh: copy the ONNX Runtime GPU pieces first" >&2; exit 1; }
export PYTHONUNBUFFERED=1
echo "cores: $(nproc); $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null)"
python3 -c 'import onnxruntime as o, onnx, sympy; print("python onnxruntime", o.__version__, o.get_available_providers(), "onnx", onnx.__version__)'
common=(--threads 16 --peer-python "$(command -v python3)" --no-openvino --no-publish)
case "$mode" in
  cpu)
    "$bin" models >/dev/null || exit 1
    "$bin" bench "${common[@]}" --profile --profile-runs 5 --json "$out/cpu-16t.json" 2>&1 | tee "$out/cpu-16t.log"
    ;;
  cuda)
    "$bin" bench "${common[@]}" --provider cuda --json "$out/cuda-16t.json" 2>&1 | tee "$out/cuda-16t.log"
    ;;
  *)
    echo "mode must be cpu or cuda" >&2
    exit 2
    ;;
esac
