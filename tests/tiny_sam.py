"""A tiny randomly initialised SAM for tests, registered as sam_model ``test_tiny``.

Importing this module adds ``test_tiny`` to ``masks.sam.SAM_BUILDERS`` (the product registry
holds the official model types only), so a ``MaskConfig(sam_model="test_tiny")`` builds it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from alphagan_video.masks.sam import SAM_BUILDERS

if TYPE_CHECKING:
    from segment_anything.modeling import Sam


def build_tiny_sam(seed: int = 0) -> "Sam":
    """A tiny randomly initialised SAM (~82 K parameters) from segment-anything's own
    classes, so ``SamPredictor`` runs end to end without an official checkpoint.

    128-pixel encoder input, 16-pixel patches (8x8 embedding), width 32, depth 2; low-res mask
    logits are 32x32. It segments nothing meaningful. Deterministic for a given ``seed``
    (initialised under a forked RNG, the global RNG is left untouched).
    """
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        sam = Sam(
            image_encoder=ImageEncoderViT(
                img_size=128,
                patch_size=16,
                embed_dim=32,
                depth=2,
                num_heads=2,
                mlp_ratio=2,
                use_rel_pos=True,
                global_attn_indexes=(1,),
                window_size=4,
                out_chans=32,
            ),
            prompt_encoder=PromptEncoder(
                embed_dim=32, image_embedding_size=(8, 8), input_image_size=(128, 128), mask_in_chans=4
            ),
            mask_decoder=MaskDecoder(
                num_multimask_outputs=3,
                transformer=TwoWayTransformer(depth=1, embedding_dim=32, mlp_dim=64, num_heads=2),
                transformer_dim=32,
                iou_head_depth=2,
                iou_head_hidden_dim=32,
            ),
            pixel_mean=[123.675, 116.28, 103.53],
            pixel_std=[58.395, 57.12, 57.375],
        )
    return sam.eval()


SAM_BUILDERS.setdefault("test_tiny", build_tiny_sam)
