"""The model variants of the GPU table (`cargo xtask bench --device cuda`), made once per model:

    gpu_prep.py --input M.onnx --dir DIR --model-type bert|vit --num-heads 12 --hidden-size 768 \
        --transfuse BIN [--fixed TAG=SPEC ...] [--fresh]

- peer: ONNX Runtime's transformers optimizer with its GPU options (use_gpu=True, opt_level 0);
  peer-fp16: its own float16 conversion of that (keep_io_types=True);
- raw-fp16: the original through onnxruntime.transformers.float16's convert_float_to_float16
  (keep_io_types=True);
- ours: `transfuse optimize`; ours-fp16: with `--float16`; ours-fixed<TAG> and
  ours-fixed-fp16<TAG>: with `--fix-shapes SPEC` (each only where the binary has the flag).

Existing outputs are reused unless --fresh. Prints one JSON object: {"flags": [...],
"variants": {name: {"path": ...} or {"error": ...}}}.
"""

import argparse
import json
import os
import subprocess
import sys


def short(e):
    text = f"{type(e).__name__}: {e}" if isinstance(e, Exception) else str(e)
    lines = [l for l in text.strip().splitlines() if l.strip()]
    return lines[-1][:500] if lines else "failed"


def peer(args, out, out16):
    from onnxruntime.transformers import optimizer

    opt = optimizer.optimize_model(
        args.input,
        model_type=args.model_type,
        num_heads=args.num_heads,
        hidden_size=args.hidden_size,
        opt_level=0,
        use_gpu=True,
    )
    opt.save_model_to_file(out)
    opt.convert_float_to_float16(keep_io_types=True)
    opt.save_model_to_file(out16)


def raw_fp16(args, out):
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    onnx.save_model(convert_float_to_float16(onnx.load(args.input), keep_io_types=True), out)


def ours(args, out, extra):
    command = [args.transfuse, "optimize", args.input, "-o", out, "--no-verify", "--quiet", *extra]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr or f"exit status {done.returncode}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--input", required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--model-type", required=True)
    parser.add_argument("--num-heads", type=int, default=12)
    parser.add_argument("--hidden-size", type=int, default=768)
    parser.add_argument("--transfuse", required=True)
    parser.add_argument("--fixed", action="append", default=[])
    parser.add_argument("--fresh", action="store_true")
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    help_text = subprocess.run(
        [args.transfuse, "optimize", "--help"], capture_output=True, text=True
    ).stdout
    flags = [f for f in ("--fix-shapes", "--float16") if f in help_text]
    path = lambda name: os.path.join(args.dir, name + ".onnx")
    jobs = [
        (["peer", "peer-fp16"], lambda: peer(args, path("peer"), path("peer-fp16")), []),
        (["raw-fp16"], lambda: raw_fp16(args, path("raw-fp16")), []),
        (["ours"], lambda: ours(args, path("ours"), []), []),
        (["ours-fp16"], lambda: ours(args, path("ours-fp16"), ["--float16"]), ["--float16"]),
    ]
    for item in args.fixed:
        tag, spec = item.split("=", 1)
        fix = ["--fix-shapes", spec]
        for name, extra in ((f"ours-fixed{tag}", fix), (f"ours-fixed-fp16{tag}", fix + ["--float16"])):
            needs = [a for a in extra if a.startswith("--")]
            jobs.append(([name], lambda n=name, e=extra: ours(args, path(n), e), needs))
    variants = {}
    for names, make, needs in jobs:
        missing = [f for f in needs if f not in flags]
        if missing:
            for n in names:
                variants[n] = {"error": f"not available in this build (no `optimize {missing[0]}`)"}
            continue
        error = "not produced"
        if args.fresh or not all(os.path.isfile(path(n)) for n in names):
            print(f"making {', '.join(names)}", file=sys.stderr, flush=True)
            for n in names:
                if os.path.isfile(path(n)):
                    os.remove(path(n))
            try:
                make()
            except Exception as e:
                error = short(e)
        for n in names:
            variants[n] = {"path": path(n)} if os.path.isfile(path(n)) else {"error": error}
    print(json.dumps({"flags": flags, "variants": variants}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
