"""ClearCLIP against a re-derivation of its released forward (tests/methods/official_clip.py)."""
import pytest
import torch
from official_clip import (assert_matches_official, clearclip_attn, embeds, patch_logits,
                           tokens_before_last)

from ovseg_bench_methods.clearclip import ClearCLIP
from ovseg_bench_methods.sclip import SCLIP


def official_clearclip(visual, images, class_embeds, grid, pos=None):
    """ClearCLIP VisionTransformer.forward(model_type='ClearCLIP', ignore_residual=True,
    last_n_layers=1): the last block's output is its q-q attention alone (no residual, no
    FFN), then ln_post and proj on every token."""
    x = tokens_before_last(visual, images, pos)
    blk = visual.transformer.resblocks[-1]
    out = 0
    out += clearclip_attn(blk.attn, blk.ln_1(x))
    return patch_logits(visual, out, class_embeds, grid)


@pytest.mark.parametrize('size', [(64, 64), (48, 96)])
def test_matches_official(tiny_backbone, size):
    assert_matches_official(tiny_backbone, size, official_clearclip, ClearCLIP(tiny_backbone))


@pytest.mark.parametrize('size', [(48, 96), (80, 56)])
def test_matches_official_off_grid_with_its_positional_resize(tiny_dino_pos, size):
    assert_matches_official(tiny_dino_pos, size, official_clearclip, ClearCLIP(tiny_dino_pos))


def test_matches_official_on_vit_b16(vit_b16):
    assert_matches_official(vit_b16, (224, 224), official_clearclip, ClearCLIP(vit_b16))


def test_residual_option_and_difference_from_sclip(tiny_backbone):
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    text = embeds(7, tiny_backbone.embed_dim)
    with torch.no_grad():
        clear = ClearCLIP(tiny_backbone).predict_dense(x, text)
        kept = ClearCLIP(tiny_backbone, residual=True).predict_dense(x, text)
        sclip = SCLIP(tiny_backbone, form='reduced').predict_dense(x, text)
    assert (clear - kept).abs().max() > 1e-2 and (clear - sclip).abs().max() > 1e-3
