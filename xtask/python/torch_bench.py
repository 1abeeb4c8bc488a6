"""PyTorch rows of the benchmark: the same architectures as the ONNX models, built from
transformers configs with random weights (latency does not depend on the weights).

    torch_bench.py --device cuda --cases bert:32,bert:128,vit --runs 300 --json out.json
    torch_bench.py --device cpu --threads 16 --cases bert:32,bert:128,vit --json out.json

Configurations: eager attention, SDPA attention, torch.compile (default mode) and, on CUDA,
torch.compile(mode="reduce-overhead") (CUDA graphs), both over SDPA. On CUDA each at fp32
without TF32, fp32 with TF32 and fp16; on the CPU at fp32. Batch 1. Every run is timed on the
host clock around the call and a torch.cuda.synchronize(), after warm-up runs; the JSON holds
median and min per configuration, and the machine facts (card, driver, versions).
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
import traceback


def machine(device):
    import torch
    import transformers

    facts = {"torch": torch.__version__, "transformers": transformers.__version__}
    if device == "cuda":
        facts["card"] = torch.cuda.get_device_name(0)
        facts["cuda"] = torch.version.cuda
        try:
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=30,
            )
            facts["driver"] = out.stdout.strip().split(",")[-1].strip()
        except Exception as e:
            facts["driver"] = f"unknown ({e})"
    else:
        facts["threads"] = torch.get_num_threads()
    return facts


def build(kind, attn, dtype, device):
    import torch
    from transformers import BertConfig, BertModel, ViTConfig, ViTForImageClassification

    torch.manual_seed(0)
    if kind == "bert":
        cls, config, extra = BertModel, BertConfig(), {"add_pooling_layer": False}
    else:
        cls, config, extra = ViTForImageClassification, ViTConfig(num_labels=1000), {}
    try:
        model = cls._from_config(config, attn_implementation=attn, **extra)
    except (TypeError, ValueError):
        config._attn_implementation = attn
        model = cls(config, **extra)
    used = getattr(model.config, "_attn_implementation", None)
    if used != attn:
        raise RuntimeError(f"asked for {attn} attention, the model uses {used}")
    return model.eval().to(device=device, dtype=dtype)


def inputs(kind, seq, dtype, device):
    import torch

    g = torch.Generator().manual_seed(0)
    if kind == "bert":
        ids = torch.randint(1000, 30000, (1, seq), generator=g)
        return {
            "input_ids": ids.to(device),
            "attention_mask": torch.ones(1, seq, dtype=torch.long, device=device),
            "token_type_ids": torch.zeros(1, seq, dtype=torch.long, device=device),
        }
    return {"pixel_values": torch.randn(1, 3, 224, 224, generator=g).to(device=device, dtype=dtype)}


def set_tf32(on):
    import torch

    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on


def time_config(kind, seq, impl, precision, args):
    import torch

    device = args.device
    dtype = torch.float16 if precision == "fp16" else torch.float32
    if device == "cuda":
        set_tf32(precision == "tf32")
    attn = "eager" if impl == "eager" else "sdpa"
    model = build(kind, attn, dtype, device)
    feed = inputs(kind, seq, dtype, device)
    torch._dynamo.reset()
    if impl == "compile":
        model = torch.compile(model)
    elif impl == "compile-reduce-overhead":
        model = torch.compile(model, mode="reduce-overhead")
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    samples = []
    started = time.perf_counter()
    with torch.inference_mode():
        for _ in range(args.warmup):
            model(**feed)
        sync()
        warm_s = time.perf_counter() - started
        for _ in range(args.runs):
            t0 = time.perf_counter()
            model(**feed)
            sync()
            samples.append((time.perf_counter() - t0) * 1e3)
    return {
        "median_ms": statistics.median(samples),
        "min_ms": min(samples),
        "runs": len(samples),
        "warmup_s": warm_s,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--cases", default="bert:32,bert:128,vit")
    parser.add_argument("--impls", default="")
    parser.add_argument("--precisions", default="")
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--json", required=True)
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda":
        impls = ["eager", "sdpa", "compile", "compile-reduce-overhead"]
        precisions = ["fp32", "tf32", "fp16"]
    else:
        impls = ["eager", "sdpa", "compile"]
        precisions = ["fp32"]
    impls = args.impls.split(",") if args.impls else impls
    precisions = args.precisions.split(",") if args.precisions else precisions
    result = {"device": args.device, "machine": machine(args.device), "rows": []}
    for case in args.cases.split(","):
        kind, _, seq = case.partition(":")
        seq = int(seq) if seq else None
        for precision in precisions:
            for impl in impls:
                row = {"model": kind, "seq": seq, "impl": impl, "precision": precision}
                try:
                    row.update(time_config(kind, seq, impl, precision, args))
                except Exception as e:
                    traceback.print_exc()
                    row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                result["rows"].append(row)
                shown = f"{row['median_ms']:.3f} ms" if "median_ms" in row else row["error"]
                print(f"torch {args.device} {case} {impl} {precision}: {shown}", flush=True)
                with open(args.json, "w") as f:
                    json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
