# Sourced by gpu-bench.sh and gpu-profile.sh with `kit` set to the kit's directory
# (target/gpuk on the device machine): joins ONNX Runtime's CUDA build from /tmp/chunks
# (its pieces copied there beforehand, see gpu-pack.sh) and loads its environment, and
# unpacks the kit's `xtask` and `transfuse` into /tmp/gpubin once.
mkdir -p /tmp/chunks /tmp/gpubin
cp "$kit"/ort/* /tmp/chunks/
# shellcheck disable=SC1091
source /tmp/chunks/env.sh || exit 1
for f in "$kit"/bin/*.xz; do
  b=/tmp/gpubin/$(basename "$f" .xz)
  [ -x "$b" ] || { python3 -c "import lzma,sys,shutil; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2],'wb'))" "$f" "$b" && chmod +x "$b"; }
done
export PYTHONUNBUFFERED=1
