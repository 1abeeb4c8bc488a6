"""Model variants of the GPU table that come from ONNX Runtime's own Python tools.

    gpu_prep.py peer --input M.onnx --output P.onnx --model-type bert --num-heads 12 \
        --hidden-size 768 [--float16 P16.onnx]
        ONNX Runtime's transformers optimizer with its GPU options (use_gpu=True, opt_level 0),
        and optionally its own float16 conversion of the result (keep_io_types=True).
    gpu_prep.py fp16 --input M.onnx --output M16.onnx
        The unoptimized model converted by onnxruntime.transformers.float16's
        convert_float_to_float16 (keep_io_types=True).

Prints one JSON line: {"ok": true} or {"ok": false, "error": "..."} per output.
"""

import argparse
import json
import sys
import traceback


def save(model, path):
    import onnx

    onnx.save_model(model, path)


def peer(args):
    from onnxruntime.transformers import optimizer

    result = {}
    try:
        opt = optimizer.optimize_model(
            args.input,
            model_type=args.model_type,
            num_heads=args.num_heads,
            hidden_size=args.hidden_size,
            opt_level=0,
            use_gpu=True,
        )
        opt.save_model_to_file(args.output)
        result[args.output] = {"ok": True, "fused": opt.get_fused_operator_statistics()}
        if args.float16:
            try:
                opt.convert_float_to_float16(keep_io_types=True)
                opt.save_model_to_file(args.float16)
                result[args.float16] = {"ok": True}
            except Exception as e:  # the conversion's own failure is a result
                result[args.float16] = {"ok": False, "error": f"{type(e).__name__}: {e}"}
    except Exception as e:
        traceback.print_exc()
        result[args.output] = {"ok": False, "error": f"{type(e).__name__}: {e}"}
    return result


def fp16(args):
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    try:
        model = onnx.load(args.input)
        save(convert_float_to_float16(model, keep_io_types=True), args.output)
        return {args.output: {"ok": True}}
    except Exception as e:
        traceback.print_exc()
        return {args.output: {"ok": False, "error": f"{type(e).__name__}: {e}"}}


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("peer")
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--model-type", required=True)
    p.add_argument("--num-heads", type=int, default=12)
    p.add_argument("--hidden-size", type=int, default=768)
    p.add_argument("--float16")
    f = sub.add_parser("fp16")
    f.add_argument("--input", required=True)
    f.add_argument("--output", required=True)
    args = parser.parse_args()
    result = peer(args) if args.command == "peer" else fp16(args)
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
