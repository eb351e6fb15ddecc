"""SCLIP against a re-derivation of its released forward (tests/methods/official_clip.py)."""
import pytest
import torch
import torch.nn.functional as F
from official_clip import (assert_matches_official, embeds, patch_logits, sclip_attn,
                           tokens_before_last)

from ovseg_bench_methods.sclip import SCLIP


def official_sclip(visual, images, class_embeds, grid, pos=None):
    """SCLIP clip/model.py VisionTransformer.forward(return_all=True, csa=True): the last
    block keeps its residual and MLP around the correlative attention."""
    x = tokens_before_last(visual, images, pos)
    blk = visual.transformer.resblocks[-1]
    x = x + sclip_attn(blk.attn, blk.ln_1(x))
    x = x + blk.mlp(blk.ln_2(x))
    return patch_logits(visual, x, class_embeds, grid)


@pytest.mark.parametrize('size', [(64, 64), (48, 96)])
def test_released_form_matches_official(tiny_backbone, size):
    assert_matches_official(tiny_backbone, size, official_sclip, SCLIP(tiny_backbone))


@pytest.mark.parametrize('size', [(48, 96), (80, 56)])
def test_released_form_matches_official_off_grid_with_its_positional_resize(tiny_dino_pos, size):
    assert_matches_official(tiny_dino_pos, size, official_sclip, SCLIP(tiny_dino_pos))


def test_released_form_matches_official_on_vit_b16(vit_b16):
    assert_matches_official(vit_b16, (224, 224), official_sclip, SCLIP(vit_b16))


def test_reduced_form_is_the_backbone_csa_and_differs_from_released(tiny_backbone):
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    text = embeds(7, tiny_backbone.embed_dim)
    with torch.no_grad():
        reduced = SCLIP(tiny_backbone, form='reduced').predict_dense(x, text)
        csa = F.normalize(tiny_backbone.forward_dense(x, last_block='csa').patch, dim=-1)
        released = SCLIP(tiny_backbone).predict_dense(x, text)
    torch.testing.assert_close(reduced, (csa @ text.t()).permute(0, 3, 1, 2), atol=1e-5,
                               rtol=1e-5)
    assert (reduced - released).abs().max() > 1e-2
    with pytest.raises(ValueError, match='form'):
        SCLIP(tiny_backbone, form='full')
