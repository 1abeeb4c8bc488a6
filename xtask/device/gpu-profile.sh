#!/usr/bin/env bash
# Where the GPU time goes, on the device machine: CUDA kernels of ONNX Runtime sessions on our
# fixed-shape models (packed Attention and MultiHeadAttention variants, fp32/TF32 and fp16)
# and of torch.compile on the same architectures, through xtask/python/gpu_profile.py. Uses
# the kit of gpu-pack.sh (carried as target/gpuk) once the CUDA provider's pieces are in
# /tmp/chunks, like gpu-bench.sh:
#
#   bash target/gpuk/gpu-profile.sh OUT_JSON MODEL[:FIXSPEC] ... [-- gpu_profile.py options]
#
# e.g. `$OUT/profile.json vit_eager_ts_op14:batch=1 bert_eager_ts_op14:batch=1,sequence=128
# -- --torch vit`; the options after `--` go to the fp32 and the fp16 listing (a `--torch`
# case is then profiled at fp32 with TF32 and at fp16). OUT_JSON gets every entry of the
# three listings (`cargo xtask bench --render-only` renders it from xtask/bench/results/gpu/).
# Each model is materialized from its skeleton (`xtask models`) and optimized three ways:
# ours-fixed, ours-fixed-mha (`--attention-op mha`) and ours-fixed-fp16. The kernels of
# fp32 variants are then listed with ONNX Runtime's defaults and again with
# ORT_MIN_SEQ_LEN_EFFICIENT_ATTENTION_FP32=1 (memory-efficient attention below its default
# threshold of 256 tokens).
set -uo pipefail
kit=$(cd "$(dirname "$0")" && pwd)
mkdir -p /tmp/prof
# shellcheck source=gpu-kit-setup.sh
source "$kit/gpu-kit-setup.sh"
json=$1
shift
fp32=() fp16=() extra=()
while [ $# -gt 0 ]; do
  case $1 in
    --) shift; extra=("$@"); break ;;
    *) name=${1%%:*}; spec=${1#*:}; shift
       model=$(/tmp/gpubin/xtask models "$name" | tail -1) || { echo "no model $name"; continue; }
       for v in fixed fixed-mha fixed-fp16; do
         flags=(--fix-shapes "$spec")
         [ "$v" = fixed-mha ] && flags+=(--attention-op mha)
         [ "$v" = fixed-fp16 ] && flags+=(--float16)
         out=/tmp/prof/$name-$v.onnx
         [ -f "$out" ] || /tmp/gpubin/transfuse optimize "$model" -o "$out" --no-verify --quiet "${flags[@]}" \
           || echo "optimize $name $v failed"
       done
       fp32+=(--onnx "$name-ours-fixed=/tmp/prof/$name-fixed.onnx" --onnx "$name-ours-fixed-mha=/tmp/prof/$name-fixed-mha.onnx")
       fp16+=(--onnx "$name-ours-fixed-fp16=/tmp/prof/$name-fixed-fp16.onnx") ;;
  esac
done
echo "cores: $(nproc); $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null)"
quiet() { grep -v "^\s*$\|Warning\|warn"; }
python3 "$kit/python/gpu_profile.py" "${fp32[@]}" "${extra[@]}" --setting "fp32, TF32" --json /tmp/prof/a.json 2>&1 | quiet
ORT_MIN_SEQ_LEN_EFFICIENT_ATTENTION_FP32=1 python3 "$kit/python/gpu_profile.py" "${fp32[@]}" \
  --setting "fp32, TF32, ORT_MIN_SEQ_LEN_EFFICIENT_ATTENTION_FP32=1" --json /tmp/prof/b.json 2>&1 | quiet
python3 "$kit/python/gpu_profile.py" --fp16 "${fp16[@]}" "${extra[@]}" --setting fp16 --json /tmp/prof/c.json 2>&1 | quiet
python3 - "$json" /tmp/prof/a.json /tmp/prof/b.json /tmp/prof/c.json <<'PY'
import json, subprocess, sys
entries = []
for path in sys.argv[2:]:
    try:
        entries += json.load(open(path))
    except (OSError, ValueError) as e:
        print(f"{path}: {e}")
card = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                      capture_output=True, text=True).stdout.strip()
json.dump({"card": card, "entries": entries}, open(sys.argv[1], "w"), indent=1)
PY
