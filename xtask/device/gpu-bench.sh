#!/usr/bin/env bash
# One part of the GPU table (`xtask bench --device cuda`) on the device machine, from the kit
# that xtask/device/gpu-pack.sh packs into target/gpuk (carried), once the pieces of ONNX
# Runtime's CUDA provider are in /tmp/chunks. Run from the checkout's root there:
#
#   bash target/gpuk/gpu-bench.sh OUT_JSON [models] [bench options]
#
# Writes OUT_JSON, OUT.md (that part's page) and OUT.log; optimized models stay under
# target/bench/gpu/ for later calls on the same machine. Each case is saved as it finishes,
# so a call cut short keeps what it measured.
set -uo pipefail
kit=$(cd "$(dirname "$0")" && pwd)
json=$1
shift
# shellcheck source=gpu-kit-setup.sh
source "$kit/gpu-kit-setup.sh"
mkdir -p "$(dirname "$json")"
echo "cores: $(nproc); $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null)"
/tmp/gpubin/xtask bench --device cuda --transfuse /tmp/gpubin/transfuse --peer-python "$(command -v python3)" \
  --scripts "$kit/python" --json "$json" --markdown "${json%.json}.md" "$@" > "${json%.json}.log" 2>&1
rc=$?
# The reply shows the end of the output: the rows, without ONNX Runtime's repeated notices.
grep -E "tf32=|^torch |rror" "${json%.json}.log" | cut -c1-300 | tail -80
echo "exit status $rc"
exit $rc
