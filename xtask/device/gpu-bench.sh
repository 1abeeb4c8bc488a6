#!/usr/bin/env bash
# The GPU table (`cargo xtask bench --device cuda`) on the device machine: one NVIDIA GPU,
# 16 cores, no network, no Rust toolchain. Run from the repository root there, after ONNX
# Runtime's CUDA build is unpacked (see ../shared/tools/ort-gpu-for-device.sh: five `run`
# calls copy its pieces to /tmp/chunks on one warm machine), with stripped release binaries
# built here and carried in BIN_DIR (`xtask`, built with `--features cuda`, and `transfuse`):
#
#   xtask/device/gpu-bench.sh BIN_DIR OUT_JSON [bench arguments...]
#
# Each call writes OUT_JSON (and its log beside it); optimized models are kept under
# target/bench/gpu/ for the later calls on the same warm machine. Split the work so each call
# ends within 600 s (see docs/benchmarks.md, "GPU table"), e.g.:
#
#   xtask/device/gpu-bench.sh bin $OUT/bert.json bert_eager_ts_op14 bert_sdpa_ts_op17 --torch none
#   xtask/device/gpu-bench.sh bin $OUT/vit.json vit_eager_ts_op14 vit_sdpa_ts_op17 --torch none
#   xtask/device/gpu-bench.sh bin $OUT/torch.json --torch-only --torch cuda
#   xtask/device/gpu-bench.sh bin $OUT/torch-cpu.json --torch-only --torch cpu --threads 16
#
# then, here: cargo xtask bench --device cuda --render-only --merge bert.json --merge vit.json ...
set -uo pipefail
bin=$1
json=$2
shift 2
# shellcheck disable=SC1091
source /tmp/chunks/env.sh || { echo "no /tmp/chunks/env.sh: copy the ONNX Runtime GPU pieces first" >&2; exit 1; }
export PYTHONUNBUFFERED=1
scripts=${GPU_BENCH_SCRIPTS:-$(dirname "$0")/../python}
mkdir -p "$(dirname "$json")"
echo "cores: $(nproc); $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null)"
"$bin/xtask" bench --device cuda --transfuse "$bin/transfuse" --peer-python "$(command -v python3)" \
  --scripts "$scripts" --no-publish --json "$json" --markdown "${json%.json}.md" "$@" 2>&1 | tee "${json%.json}.log"
