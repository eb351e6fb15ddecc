"""MaskCLIP's dense path against the two released forms of it (tests/methods/official_clip.py):
ClearCLIP's reimplementation (value path alone, what MaskCLIP here runs) and MaskCLIP's own
ViT code (value path inside the block's residual and FFN, expressible as a LastBlock)."""
from official_clip import (assert_matches_official, clearclip_maskclip_attn, compare,
                           maskclip_released_last_block, patch_logits, tokens_before_last)

from ovseg_bench_methods.maskclip import MaskCLIP
from ovseg_bench.backbones import LastBlock


def official_clearclip_maskclip(visual, images, class_embeds, grid, pos=None):
    x = tokens_before_last(visual, images, pos)
    blk = visual.transformer.resblocks[-1]
    return patch_logits(visual, clearclip_maskclip_attn(blk.attn, blk.ln_1(x)), class_embeds,
                        grid)


def official_maskclip(visual, images, class_embeds, grid, pos=None):
    x = tokens_before_last(visual, images, pos)
    return patch_logits(visual, maskclip_released_last_block(visual, x), class_embeds, grid)


class ReleasedMaskCLIP(MaskCLIP):
    """MaskCLIP with its released ViT block: the value path plus residual and FFN."""

    def __init__(self, backbone):
        super().__init__(backbone)
        self.last_block = LastBlock(lambda q, k, v, grid: v, residual=True, mlp=True)


def test_value_path_matches_clearclips_reimplementation(tiny_backbone, vit_b16):
    for bb, size in ((tiny_backbone, (48, 96)), (vit_b16, (224, 224))):
        assert_matches_official(bb, size, official_clearclip_maskclip, MaskCLIP(bb))


def test_released_vit_block_is_a_last_block_and_differs_from_the_value_path(tiny_backbone):
    released = ReleasedMaskCLIP(tiny_backbone)
    assert_matches_official(tiny_backbone, (64, 64), official_maskclip, released)
    diff, agree = compare(tiny_backbone, (64, 64), official_maskclip, MaskCLIP(tiny_backbone))
    assert diff > 1e-2 and agree < 0.9, (diff, agree)
