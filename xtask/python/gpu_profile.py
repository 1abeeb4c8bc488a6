"""Where the GPU time goes: the CUDA kernels of ONNX Runtime sessions and of the PyTorch
reference, recorded through torch.profiler (CUPTI sees every kernel of the process, ONNX
Runtime's included).

    gpu_profile.py --onnx LABEL=MODEL.onnx ... [--torch bert:128|vit ...] [--fp16] --runs 50 \
        [--setting TEXT --json OUT.json]

ONNX Runtime sessions run on the CUDA provider with TF32 on and their inputs and outputs
bound on the device (as the bench does), without CUDA graphs, so that every kernel launch is
visible; the kernels are the ones a captured graph replays. PyTorch models are compiled with
torch.compile (default mode, TF32). Per model it prints the wall time per run, the summed
kernel time per run, and the kernels grouped by kind and by name, heaviest first; --json
writes the same as a list of entries (one per model, each tagged with --setting).
"""

import argparse
import json
import re
import statistics
import sys
import time

KINDS = [
    ("gemm", r"gemm|sgemm|cutlass|cublas|matmul|xmma|ampere_|sm80_|sm90_|nvjet|splitK|Kernel2"),
    ("attention", r"fmha|flash|attention|Attention|softmax|Softmax|mha"),
    ("layernorm", r"[Ll]ayer[Nn]orm|SkipLayerNorm|layer_norm|LayerNorm"),
    ("gelu", r"[Gg]elu"),
    ("transpose/copy", r"[Tt]ranspose|[Cc]opy|[Cc]oncat|Memcpy|memcpy|Split|Slice"),
    ("elementwise", r"[Ee]lementwise|_[Aa]dd|BinaryElementWise|Where|IsNaN|Reduce|triton"),
]


def kind_of(name):
    for kind, pattern in KINDS:
        if re.search(pattern, name):
            return kind
    return "other"


def profile(run, runs, label, setting):
    import torch
    from torch.profiler import ProfilerActivity

    for _ in range(20):
        run()
    torch.cuda.synchronize()
    walls = []
    for _ in range(runs):
        t = time.perf_counter()
        run()
        torch.cuda.synchronize()
        walls.append((time.perf_counter() - t) * 1e3)
    with torch.profiler.profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(runs):
            run()
        torch.cuda.synchronize()
    per_name = {}
    count = {}
    for e in prof.events():
        if e.device_type != torch.autograd.DeviceType.CUDA:
            continue
        t = getattr(e, "device_time", None)
        if t is None:
            t = e.cuda_time
        per_name[e.name] = per_name.get(e.name, 0.0) + t
        count[e.name] = count.get(e.name, 0) + 1
    total = sum(per_name.values()) / runs / 1e3
    print(f"\n== {label}: wall median {statistics.median(walls):.3f} ms, min {min(walls):.3f} ms; "
          f"kernel time {total:.3f} ms/run, {sum(count.values()) / runs:.0f} kernels/run")
    kinds = {}
    for name, t in per_name.items():
        k = kind_of(name)
        kinds[k] = kinds.get(k, 0.0) + t
    for k, t in sorted(kinds.items(), key=lambda kv: -kv[1]):
        print(f"  {k:16s} {t / runs / 1e3:7.3f} ms  {100 * t / max(sum(kinds.values()), 1e-9):5.1f}%")
    print("  heaviest kernels (ms/run, launches/run, name):")
    heaviest = sorted(per_name.items(), key=lambda kv: -kv[1])[:18]
    for name, t in heaviest:
        print(f"    {t / runs / 1e3:7.3f}  {count[name] / runs:5.1f}  {name[:150]}")
    sys.stdout.flush()
    return {
        "label": label,
        "setting": setting,
        "wall_median_ms": statistics.median(walls),
        "wall_min_ms": min(walls),
        "kernel_ms": total,
        "kernels": sum(count.values()) / runs,
        "kinds_ms": {k: t / runs / 1e3 for k, t in kinds.items()},
        "heaviest": [
            {"name": name[:200], "ms": t / runs / 1e3, "launches": count[name] / runs}
            for name, t in heaviest
        ],
    }


def ort_runner(path, fp16):
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(
        path, opts, providers=[("CUDAExecutionProvider", {"use_tf32": 1}), "CPUExecutionProvider"]
    )
    binding = sess.io_binding()
    rng = np.random.default_rng(0)
    for i in sess.get_inputs():
        dims = [d if isinstance(d, int) else 1 for d in i.shape]
        if "int" in i.type:
            arr = rng.integers(1000, 30000, size=dims) if "ids" in i.name else np.ones(dims)
            arr = arr.astype(np.int64 if "int64" in i.type else np.int32)
            if "token_type" in i.name:
                arr = np.zeros(dims, arr.dtype)
        else:
            arr = rng.standard_normal(dims).astype(np.float16 if "float16" in i.type else np.float32)
        binding.bind_ortvalue_input(i.name, ort.OrtValue.ortvalue_from_numpy(arr, "cuda", 0))
    for o in sess.get_outputs():
        binding.bind_output(o.name, "cuda", 0)

    def run():
        sess.run_with_iobinding(binding)

    return run


def torch_runner(case, fp16):
    import torch

    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    import torch_bench

    kind, _, seq = case.partition(":")
    dtype = torch.float16 if fp16 else torch.float32
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    model = torch_bench.build(kind, "sdpa", dtype, "cuda")
    feed = torch_bench.inputs(kind, int(seq or 0), dtype, "cuda")
    compiled = torch.compile(model)

    def run():
        with torch.inference_mode():
            compiled(**feed)

    return run


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--onnx", action="append", default=[])
    parser.add_argument("--torch", action="append", default=[])
    parser.add_argument("--fp16", action="store_true")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--setting", default="")
    parser.add_argument("--json")
    args = parser.parse_args()
    entries = []
    for item in args.onnx:
        label, _, path = item.partition("=")
        try:
            entries.append(profile(ort_runner(path, args.fp16), args.runs, f"ort {label}", args.setting))
        except Exception as e:
            print(f"\n== ort {label}: failed: {e}", flush=True)
    for case in args.torch:
        try:
            label = f"torch.compile {case}{' fp16' if args.fp16 else ''}"
            entries.append(profile(torch_runner(case, args.fp16), args.runs, label, args.setting))
        except Exception as e:
            print(f"\n== torch {case}: failed: {e}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(entries, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
