"""OpenVINO side of `cargo xtask bench`: one model compiled for the CPU, driven over stdin.

Started as `python -u openvino_driver.py --model M.onnx --threads N --inputs DIR`, where DIR
holds the timed inputs as ONNX TensorProto files `input_0.pb`, `input_1.pb`, ... (named after
the model's inputs). The model is reshaped to those inputs' static shapes and compiled with
the LATENCY hint, one stream, N inference threads and the inference precision given by
`--precision` (default f32: on CPUs with bf16 units OpenVINO would otherwise compute in
bf16). It prints `ready <version> ...`, then answers one line per command:

  time                      one inference on the timed inputs; prints its wall time in ms
  infer<TAB>IN<TAB>OUT      runs IN/input_N.pb (any batch: compiled again when the shapes
                            differ), writes OUT/output_N.pb; prints `ok`
  quit                      exits

Failures print `error <message>` and the driver keeps going.
"""

import argparse
import os
import sys
import time

import numpy as np
import onnx
from onnx import numpy_helper
import openvino as ov


def read_inputs(directory):
    tensors = {}
    index = 0
    while True:
        path = os.path.join(directory, f"input_{index}.pb")
        if not os.path.isfile(path):
            break
        proto = onnx.load_tensor(path)
        tensors[proto.name] = numpy_helper.to_array(proto)
        index += 1
    if not tensors:
        raise RuntimeError(f"no input_0.pb in {directory}")
    return tensors


class Driver:
    def __init__(self, model_path, threads, precision):
        self.core = ov.Core()
        self.model_path = model_path
        self.config = {
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": "1",
            "INFERENCE_NUM_THREADS": str(threads),
            "INFERENCE_PRECISION_HINT": precision,
        }
        self.compiled = {}

    def request(self, feeds):
        key = tuple(sorted((name, tuple(array.shape)) for name, array in feeds.items()))
        if key not in self.compiled:
            model = self.core.read_model(self.model_path)
            model.reshape({name: ov.PartialShape(list(array.shape)) for name, array in feeds.items()})
            compiled = self.core.compile_model(model, "CPU", self.config)
            self.compiled[key] = compiled.create_infer_request()
        return self.compiled[key]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--inputs", required=True)
    parser.add_argument("--precision", default="f32")
    args = parser.parse_args()
    try:
        driver = Driver(args.model, args.threads, args.precision)
        feeds = read_inputs(args.inputs)
        timed = driver.request(feeds)
        timed.infer(feeds)
    except Exception as error:  # report, then exit: nothing to drive
        print(f"error {type(error).__name__}: {error}".replace("\n", " "), flush=True)
        return 1
    precision = driver.core.get_property("CPU", "INFERENCE_PRECISION_HINT")
    print(f"ready {ov.__version__} requested precision {args.precision}, CPU default {precision}", flush=True)
    for line in sys.stdin:
        command = line.rstrip("\n").split("\t")
        try:
            if command[0] == "time":
                start = time.perf_counter()
                timed.infer(feeds)
                print(f"{(time.perf_counter() - start) * 1e3:.6f}", flush=True)
            elif command[0] == "infer" and len(command) == 3:
                inputs = read_inputs(command[1])
                request = driver.request(inputs)
                request.infer(inputs)
                os.makedirs(command[2], exist_ok=True)
                for index, output in enumerate(request.model_outputs):
                    array = np.asarray(request.get_tensor(output).data)
                    name = output.get_any_name() if output.get_names() else f"output_{index}"
                    onnx.save_tensor(numpy_helper.from_array(array, name), os.path.join(command[2], f"output_{index}.pb"))
                print("ok", flush=True)
            elif command[0] == "quit":
                return 0
            else:
                print(f"error unknown command {line.strip()!r}", flush=True)
        except Exception as error:
            print(f"error {type(error).__name__}: {error}".replace("\n", " "), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
