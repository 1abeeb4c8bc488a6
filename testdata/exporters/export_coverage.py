#!/usr/bin/env python3
"""Export the coverage families: dynamic-image-size vision models, windowed and
relative-bias vision models, a T5 encoder, RoFormer, an audio encoder.

Families (random weights, ``torch.manual_seed(0)``, built from configs, no download):
  vit_interp    HF ViTModel called with ``interpolate_pos_encoding=True``
  dinov2        HF Dinov2Model (position embeddings interpolated at run time)
  timm_vit_dyn  timm VisionTransformer with ``dynamic_img_size=True``
  t5_enc        HF T5EncoderModel (relative position bias, no attention scale)
  roformer      HF RoFormerModel (rotary position embeddings)
  swin          HF SwinModel (shifted windows, relative position bias; fixed image size)
  beit          HF BeitModel (relative position bias; fixed image size)
  siglip_vision HF SiglipVisionModel (auto_pad VALID patch embedding; fixed image size)
  wav2vec2      HF Wav2Vec2Model (audio; strided conv feature encoder, dynamic samples)
  esm           HF EsmModel with rotary position embeddings (protein language model)
  modernbert    HF ModernBertModel (rotary, GeGLU, alternating global and sliding-window
                attention)
  xlm           HF XLMModel (ids sliced before the lookup, masked_fill before Softmax)
  tv_vit        torchvision VisionTransformer (torch.nn.MultiheadAttention; fixed image size)

Each family is exported with the TorchScript exporter (``dynamo=False``) at opset 14 and 17
and with the dynamo exporter (``dynamo=True``, then ``.optimize()``) at opset 18, once at the
tiny size (full weights plus ``test_data_set_0`` and, for vision, ``test_data_set_1`` at
48x40) and once at base size as a skeleton (float initializers of 4096 or more elements
stripped, their names in the metadata entry ``skeleton_fill``).

Vision models are traced with a non-native image size (tiny 48x40, base 240x208 or 224x224
for DINOv2, whose table is 37x37) so that the position-embedding interpolation is in the
graph, never short-cut by a trace-time size comparison. Where the TorchScript exporter
cannot export antialiased bicubic resizing (``aten::_upsample_bicubic2d_aa``), the model is
exported and its reference outputs computed with ``antialias=False`` forced on
``torch.nn.functional.interpolate``; the manifest entry then carries a ``note`` saying so.

Usage: python3 export_coverage.py --out DIR [--only FAMILY,...] [--sizes tiny,base]
Writes DIR/tiny/<name>.onnx, DIR/tiny/<name>/test_data_set_N/, DIR/skeleton/<name>.onnx,
DIR/manifest_entries.json and prints one line per export (ONNX Runtime check included when
onnxruntime is installed).
"""

import argparse
import contextlib
import json
import os
import re
import sys
import time
import traceback

import numpy as np
import onnx
import onnx.numpy_helper as nh
import torch
import torch.nn as nn

FAMILIES = ["vit_interp", "dinov2", "timm_vit_dyn", "t5_enc", "roformer", "swin", "beit",
            "siglip_vision", "wav2vec2", "esm", "modernbert", "xlm", "tv_vit"]
TEXT = {"t5_enc", "roformer", "esm", "modernbert", "xlm"}
# Text families exported with SDPA attention too (like the vision ones).
SDPA_TEXT = {"esm", "modernbert"}
# Vision families whose position tables fix the image size: only the batch is dynamic.
FIXED_SIZE = {"beit", "siglip_vision", "swin", "tv_vit"}
AUDIO = {"wav2vec2"}
# Exported with autograd on (see export_one).
GRAD_EXPORT = {"tv_vit"}
TINY_SAMPLES = (1024, 1600)
TINY_SEQ = 16
TINY_VOCAB = 1000
TINY_IMAGE = (32, 32)
TINY_IMAGE_ALT = (48, 40)
SKELETON_MIN_ELEMS = 4096


def first_output(out):
    """The model's first output: last hidden state (HF) or the logits tensor (timm)."""
    return out if isinstance(out, torch.Tensor) else out[0]


class TextWrap(nn.Module):
    """Calls a text model with ids and mask; returns its last hidden state only."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, input_ids, attention_mask):
        return first_output(self.m(input_ids=input_ids, attention_mask=attention_mask))


class ImageWrap(nn.Module):
    """Calls a vision model on pixel values; returns its first output only."""

    def __init__(self, m, **call_kwargs):
        super().__init__()
        self.m = m
        self.call_kwargs = call_kwargs

    def forward(self, pixel_values):
        return first_output(self.m(pixel_values, **self.call_kwargs))


def hf_build(cls, config, attn, **kwargs):
    """Builds an HF model from a config with the given attention implementation."""
    try:
        m = cls._from_config(config, attn_implementation=attn, **kwargs)
    except (TypeError, ValueError):
        config._attn_implementation = attn
        m = cls(config, **kwargs)
    return m


def build(family, size, attn):
    """Returns (wrapped eval module, attention implementation actually set)."""
    torch.manual_seed(0)
    tiny = size == "tiny"
    if family == "vit_interp":
        from transformers import ViTConfig, ViTModel

        cfg = (
            ViTConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=128, image_size=32, patch_size=8)
            if tiny else ViTConfig()
        )
        m = hf_build(ViTModel, cfg, attn, add_pooling_layer=False)
        w = ImageWrap(m, interpolate_pos_encoding=True)
    elif family == "dinov2":
        from transformers import Dinov2Config, Dinov2Model

        cfg = (
            Dinov2Config(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                         mlp_ratio=2, image_size=32, patch_size=8)
            if tiny else Dinov2Config(image_size=518, patch_size=14)
        )
        m = hf_build(Dinov2Model, cfg, attn)
        w = ImageWrap(m)
    elif family == "timm_vit_dyn":
        import timm
        from timm.models.vision_transformer import VisionTransformer

        if tiny:
            m = VisionTransformer(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=4,
                                  mlp_ratio=2.0, num_classes=10, dynamic_img_size=True)
        else:
            m = timm.create_model("vit_base_patch16_224", pretrained=False, dynamic_img_size=True)
        for mod in m.modules():
            if hasattr(mod, "fused_attn"):
                mod.fused_attn = attn == "sdpa"
        w = ImageWrap(m)
    elif family == "t5_enc":
        from transformers import T5Config, T5EncoderModel

        cfg = (
            T5Config(vocab_size=TINY_VOCAB, d_model=64, d_kv=16, d_ff=128, num_layers=2,
                     num_heads=4)
            if tiny else
            T5Config(vocab_size=32128, d_model=768, d_kv=64, d_ff=3072, num_layers=12,
                     num_heads=12)
        )
        m = hf_build(T5EncoderModel, cfg, attn)
        w = TextWrap(m)
    elif family == "roformer":
        from transformers import RoFormerConfig, RoFormerModel

        cfg = (
            RoFormerConfig(vocab_size=TINY_VOCAB, hidden_size=64, num_hidden_layers=2,
                           num_attention_heads=4, intermediate_size=128,
                           max_position_embeddings=128)
            if tiny else RoFormerConfig()
        )
        m = hf_build(RoFormerModel, cfg, attn)
        w = TextWrap(m)
    elif family == "swin":
        from transformers import SwinConfig, SwinModel

        cfg = (
            SwinConfig(image_size=32, patch_size=4, embed_dim=32, depths=[2, 2],
                       num_heads=[2, 4], window_size=4)
            if tiny else SwinConfig()
        )
        m = hf_build(SwinModel, cfg, attn, add_pooling_layer=False)
        w = ImageWrap(m)
    elif family == "beit":
        from transformers import BeitConfig, BeitModel

        cfg = (
            BeitConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                       intermediate_size=128, image_size=32, patch_size=8,
                       use_relative_position_bias=True)
            if tiny else BeitConfig(use_relative_position_bias=True)
        )
        m = hf_build(BeitModel, cfg, attn, add_pooling_layer=False)
        w = ImageWrap(m)
    elif family == "siglip_vision":
        from transformers import SiglipVisionConfig, SiglipVisionModel

        cfg = (
            SiglipVisionConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                               intermediate_size=128, image_size=32, patch_size=8)
            if tiny else SiglipVisionConfig()
        )
        m = hf_build(SiglipVisionModel, cfg, attn)
        w = ImageWrap(m)
    elif family == "wav2vec2":
        from transformers import Wav2Vec2Config, Wav2Vec2Model

        cfg = (
            Wav2Vec2Config(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=128, conv_dim=(32, 32), conv_stride=(5, 2),
                           conv_kernel=(10, 3), num_conv_pos_embeddings=16,
                           num_conv_pos_embedding_groups=4)
            if tiny else Wav2Vec2Config()
        )
        m = hf_build(Wav2Vec2Model, cfg, attn)
        w = ImageWrap(m)
    elif family == "esm":
        from transformers import EsmConfig, EsmModel

        cfg = (
            EsmConfig(vocab_size=TINY_VOCAB, hidden_size=64, num_hidden_layers=2,
                      num_attention_heads=4, intermediate_size=128,
                      position_embedding_type="rotary", pad_token_id=1, mask_token_id=2)
            if tiny else
            EsmConfig(vocab_size=33, hidden_size=768, num_hidden_layers=12,
                      num_attention_heads=12, intermediate_size=3072,
                      position_embedding_type="rotary", pad_token_id=1, mask_token_id=32)
        )
        m = hf_build(EsmModel, cfg, attn, add_pooling_layer=False)
        w = TextWrap(m)
    elif family == "modernbert":
        from transformers import ModernBertConfig, ModernBertModel

        ids = dict(pad_token_id=0, bos_token_id=1, eos_token_id=2, cls_token_id=1,
                   sep_token_id=2)
        cfg = (
            ModernBertConfig(vocab_size=TINY_VOCAB, hidden_size=64, num_hidden_layers=2,
                             num_attention_heads=4, intermediate_size=128,
                             global_attn_every_n_layers=2, local_attention=8, **ids)
            if tiny else ModernBertConfig()
        )
        m = hf_build(ModernBertModel, cfg, attn)
        w = TextWrap(m)
    elif family == "xlm":
        from transformers import XLMConfig, XLMModel

        cfg = (
            XLMConfig(vocab_size=TINY_VOCAB, emb_dim=64, n_layers=2, n_heads=4)
            if tiny else XLMConfig(vocab_size=30145, emb_dim=1024, n_layers=12, n_heads=8)
        )
        m = hf_build(XLMModel, cfg, attn)
        w = TextWrap(m)
    elif family == "tv_vit":
        # torchvision's ViT: torch.nn.MultiheadAttention (sequence-first inside, packed
        # in-projection, SDPA whatever `attn` says). Its head is zero-initialized, so the
        # tiny one gets random head weights: zero logits would hide any difference.
        from torchvision.models.vision_transformer import VisionTransformer, vit_b_16

        if tiny:
            m = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=4,
                                  hidden_dim=64, mlp_dim=128, num_classes=10)
            torch.nn.init.normal_(m.heads.head.weight, std=0.5)
        else:
            m = vit_b_16()
        w = ImageWrap(m)
    else:
        raise ValueError(family)
    actual = getattr(getattr(w.m, "config", None), "_attn_implementation", attn)
    return w.eval(), actual


def text_inputs(vocab, seq=TINY_SEQ, seed=0):
    """Batch 2; the second row is right-padded (mask 0 on its second half)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, vocab, size=(2, seq), dtype=np.int64)
    mask = np.ones((2, seq), dtype=np.int64)
    mask[1, seq // 2:] = 0
    return [("input_ids", ids), ("attention_mask", mask)]


def audio_inputs(samples, seed=0):
    rng = np.random.default_rng(seed)
    return [("input_values", rng.standard_normal((2, samples)).astype(np.float32))]


def image_inputs(hw, seed=0):
    rng = np.random.default_rng(seed)
    return [("pixel_values", rng.random((2, 3, hw[0], hw[1]), dtype=np.float32))]


@contextlib.contextmanager
def no_antialias(active):
    """Forces antialias=False on torch.nn.functional.interpolate while active."""
    if not active:
        yield
        return
    orig = torch.nn.functional.interpolate

    def patched(*a, **kw):
        kw["antialias"] = False
        return orig(*a, **kw)

    torch.nn.functional.interpolate = patched
    try:
        yield
    finally:
        torch.nn.functional.interpolate = orig


def run_torch(w, feeds):
    with torch.no_grad():
        return w(*[torch.from_numpy(a) for _, a in feeds]).numpy()


def export_one(w, family, exporter, opset, dummy, path, antialias_off):
    names = [n for n, _ in dummy]
    args = tuple(torch.from_numpy(a) for _, a in dummy)
    if family in TEXT:
        axes = {n: {0: "batch", 1: "sequence"} for n in names}
    elif family in AUDIO:
        axes = {"input_values": {0: "batch", 1: "samples"}}
    elif family in FIXED_SIZE:
        axes = {"pixel_values": {0: "batch"}}
    else:
        axes = {"pixel_values": {0: "batch", 2: "height", 3: "width"}}
    # torch.nn.MultiheadAttention takes its fused fast path (`_native_multi_head_attention`,
    # which the TorchScript exporter cannot export) when autograd is off.
    grad = contextlib.nullcontext() if family in GRAD_EXPORT else torch.no_grad()
    with no_antialias(antialias_off), grad:
        if exporter == "ts":
            torch.onnx.export(w, args, path, dynamo=False, opset_version=opset,
                              input_names=names, output_names=["output_0"],
                              dynamic_axes=axes, do_constant_folding=True)
        else:
            try:
                prog = torch.onnx.export(w, args, dynamo=True, opset_version=opset,
                                         input_names=names, output_names=["output_0"],
                                         dynamic_axes=axes)
                renames = None
            except Exception as e:  # noqa: BLE001 - retried with explicit dynamic shapes
                print(f"    dynamic_axes refused ({type(e).__name__}); Dim.DYNAMIC instead",
                      flush=True)
                dyn = torch.export.Dim.DYNAMIC
                shapes = {n: {i: dyn for i in ax} for n, ax in axes.items()}
                prog = torch.onnx.export(w, args, dynamo=True, opset_version=opset,
                                         input_names=names, output_names=["output_0"],
                                         dynamic_shapes=shapes)
                renames = axes
            prog.optimize()
            prog.save(path)
            if renames:
                name_dims(path, renames)


def name_dims(path, axes):
    """Renames the exporter's dim symbols (s0, s1, ...) of the inputs to the axis names."""
    m = onnx.load(path)
    sym = {}
    for inp in m.graph.input:
        dims = inp.type.tensor_type.shape.dim
        for i, name in axes.get(inp.name, {}).items():
            if dims[i].dim_param:
                sym[dims[i].dim_param] = name
    if not sym:
        return
    pat = re.compile(r"\b(" + "|".join(re.escape(k) for k in sym) + r")\b")
    vis = list(m.graph.input) + list(m.graph.output) + list(m.graph.value_info)
    for v in vis:
        if not v.type.HasField("tensor_type"):
            continue
        for d in v.type.tensor_type.shape.dim:
            if d.dim_param:
                d.dim_param = pat.sub(lambda mo: sym[mo.group(1)], d.dim_param)
    onnx.save(m, path)


def save_tensor(path, name, arr):
    t = nh.from_array(arr, name)
    with open(path, "wb") as f:
        f.write(t.SerializeToString())


def ort_check(path, feeds, expected):
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    want = {i.name for i in sess.get_inputs()}
    got = sess.run(None, {n: a for n, a in feeds if n in want})[0]
    if got.shape != expected.shape:
        return f"shape {got.shape} != {expected.shape}"
    return float(np.max(np.abs(got - expected)))


def strip_skeleton(path):
    m = onnx.load(path)
    filled = []
    for t in m.graph.initializer:
        n = int(np.prod(t.dims)) if len(t.dims) else 1
        if t.data_type == onnx.TensorProto.FLOAT and n >= SKELETON_MIN_ELEMS:
            t.ClearField("raw_data")
            t.ClearField("float_data")
            filled.append(t.name)
    kept = [(q.key, q.value) for q in m.metadata_props if q.key != "skeleton_fill"]
    del m.metadata_props[:]
    for k, v in kept:
        q = m.metadata_props.add()
        q.key, q.value = k, v
    p = m.metadata_props.add()
    p.key = "skeleton_fill"
    p.value = ",".join(filled)
    onnx.save(m, path)
    return len(filled)


def entry(path, name, size, family, attn, exporter, opset, export_s):
    m = onnx.load(path, load_external_data=False)
    return {
        "name": name, "size": size, "kind": family, "attn": attn, "exporter": exporter,
        "opset": opset, "inputs": [i.name for i in m.graph.input],
        "export_s": round(export_s, 1), "nodes": len(m.graph.node),
        "ops": sorted({n.op_type for n in m.graph.node}),
    }


def variants(family):
    if family in TEXT and family not in SDPA_TEXT:
        return [("eager", "ts", 14), ("eager", "ts", 17), ("eager", "dynamo", 18)]
    return [("eager", "ts", 14), ("sdpa", "ts", 17), ("sdpa", "dynamo", 18)]


def do_export(w, family, exporter, opset, dummy, path):
    """Exports; retries with antialias forced off when the exporter lacks the AA resize."""
    try:
        export_one(w, family, exporter, opset, dummy, path, False)
        return False
    except Exception as e:  # noqa: BLE001 - any exporter failure is reported
        if "_aa" not in str(e):
            raise
        print(f"    antialiased resize not exportable ({type(e).__name__}); antialias off",
              flush=True)
        export_one(w, family, exporter, opset, dummy, path, True)
        return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", default=",".join(FAMILIES))
    ap.add_argument("--sizes", default="tiny,base")
    ap.add_argument("--exporters", default="ts,dynamo")
    ap.add_argument("--deadline-s", type=float, default=1e9,
                    help="skip remaining exports after this many seconds")
    a = ap.parse_args()
    t_start = time.time()
    torch.set_num_threads(max(1, min(16, os.cpu_count() or 1)))
    print("torch", torch.__version__, "onnx", onnx.__version__, flush=True)
    os.makedirs(os.path.join(a.out, "tiny"), exist_ok=True)
    os.makedirs(os.path.join(a.out, "skeleton"), exist_ok=True)
    entries, notes = [], []
    for size in a.sizes.split(","):
        for family in a.only.split(","):
            for attn, exporter, opset in variants(family):
                if exporter not in a.exporters.split(","):
                    continue
                if time.time() - t_start > a.deadline_s:
                    notes.append(f"{family} {size} {exporter} op{opset}: skipped (deadline)")
                    continue
                name = f"{family}_{attn}_{exporter}_op{opset}"
                sub = "tiny" if size == "tiny" else "skeleton"
                path = os.path.join(a.out, sub, name + ".onnx")
                try:
                    w, actual = build(family, size, attn)
                    if actual != attn:
                        print(f"    {name}: attention implementation is {actual}", flush=True)
                    if family in TEXT:
                        vocab = TINY_VOCAB if size == "tiny" else w.m.config.vocab_size
                        sets = [text_inputs(vocab)]
                        dummy = sets[0]
                    elif family in AUDIO:
                        sets = [audio_inputs(n, seed=k) for k, n in enumerate(TINY_SAMPLES)]
                        dummy = sets[1] if size == "tiny" else audio_inputs(16000)
                        sets = sets if size == "tiny" else []
                    elif family in FIXED_SIZE:
                        hw = TINY_IMAGE if size == "tiny" else (224, 224)
                        sets = [image_inputs(hw)] if size == "tiny" else []
                        dummy = image_inputs(hw)
                    elif size == "tiny":
                        sets = [image_inputs(TINY_IMAGE), image_inputs(TINY_IMAGE_ALT, seed=1)]
                        dummy = sets[1]
                    else:
                        hw = (224, 224) if family == "dinov2" else (240, 208)
                        sets = []
                        dummy = image_inputs(hw)
                    t0 = time.time()
                    aa_off = do_export(w, family, exporter, opset, dummy, path)
                    dt = time.time() - t0
                    e = entry(path, name, size, family, attn, exporter, opset, dt)
                    if aa_off:
                        e["note"] = ("exported and checked with antialias=False forced on "
                                     "interpolate: the exporter has no antialiased resize")
                    msg = f"{size:4} {name}: {e['nodes']} nodes, {dt:.1f}s"
                    if size == "tiny":
                        model_inputs = set(e["inputs"])
                        for k, feeds in enumerate(sets):
                            with no_antialias(aa_off):
                                want = run_torch(w, feeds)
                            d = os.path.join(a.out, "tiny", name, f"test_data_set_{k}")
                            os.makedirs(d, exist_ok=True)
                            used = [(n, x) for n, x in feeds if n in model_inputs]
                            for i, (n, x) in enumerate(used):
                                save_tensor(os.path.join(d, f"input_{i}.pb"), n, x)
                            save_tensor(os.path.join(d, "output_0.pb"), "output_0", want)
                            try:
                                diff = ort_check(path, used, want)
                            except Exception as ex:  # noqa: BLE001
                                diff = f"ORT failed: {str(ex)[:300]}"
                            msg += f"; set{k} {tuple(want.shape)} ort maxdiff {diff}"
                    else:
                        e["filled"] = strip_skeleton(path)
                    e["bytes"] = os.path.getsize(path)
                    entries.append(e)
                    print(msg, f"{e['bytes']} bytes", flush=True)
                except Exception as ex:  # noqa: BLE001 - recorded, the run goes on
                    tb = traceback.format_exc().strip().splitlines()
                    note = f"{size} {name}: FAILED {type(ex).__name__}: {str(ex)[:600]}"
                    notes.append(note)
                    print(note, "\n    " + "\n    ".join(tb[-25:]), flush=True)
                    if os.path.exists(path):
                        os.remove(path)
                with open(os.path.join(a.out, "manifest_entries.json"), "w") as f:
                    json.dump({"entries": entries, "notes": notes}, f, indent=1)
    print("done in %.0fs; %d exports, %d notes" % (time.time() - t_start, len(entries),
                                                   len(notes)))
    for n in notes:
        print("NOTE", n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
