"""NACLIP against a re-derivation of its released forward (tests/methods/official_clip.py)."""
import pytest
import torch
from official_clip import (assert_matches_official, embeds, naclip_addition, naclip_attn,
                           naclip_window, patch_logits, tokens_before_last)

from ovseg_bench_methods.naclip import NACLIP, neighbourhood_prior


def official_naclip(visual, images, class_embeds, grid, pos=None, std=5.0):
    """NACLIP VisionTransformer.forward(return_all=True) with its defaults (arch='reduced',
    attn_strategy='naclip', gaussian_std=5): the last block is its attention alone."""
    x = tokens_before_last(visual, images, pos)
    blk = visual.transformer.resblocks[-1]
    x = naclip_attn(blk.attn, blk.ln_1(x), grid, std)
    return patch_logits(visual, x, class_embeds, grid)


@pytest.mark.parametrize('size', [(64, 64), (48, 96)])
def test_matches_official(tiny_backbone, size):
    assert_matches_official(tiny_backbone, size, official_naclip, NACLIP(tiny_backbone))


@pytest.mark.parametrize('size', [(48, 96), (80, 56)])
def test_matches_official_off_grid_with_its_positional_resize(tiny_dino_pos, size):
    assert_matches_official(tiny_dino_pos, size, official_naclip, NACLIP(tiny_dino_pos))


def test_matches_official_on_vit_b16(vit_b16):
    assert_matches_official(vit_b16, (224, 224), official_naclip, NACLIP(vit_b16))


@pytest.mark.parametrize('grid,std', [((3, 5), 5.0), ((4, 4), 1.0), ((6, 2), 0.7)])
def test_prior_is_the_official_convolved_window(grid, std):
    window = naclip_window(2 * grid[0] - 1, 2 * grid[1] - 1, std)
    torch.testing.assert_close(neighbourhood_prior(*grid, std), naclip_addition(*grid, window),
                               atol=1e-6, rtol=1e-5)


def test_options(tiny_backbone):
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    text = embeds(7, tiny_backbone.embed_dim)
    with torch.no_grad():
        base = NACLIP(tiny_backbone).predict_dense(x, text)
        for other in (NACLIP(tiny_backbone, gaussian_std=None),
                      NACLIP(tiny_backbone, arch='vanilla')):
            assert (base - other.predict_dense(x, text)).abs().max() > 1e-3
    with pytest.raises(ValueError, match='arch'):
        NACLIP(tiny_backbone, arch='full')
    with pytest.raises(ValueError, match='gaussian_std'):
        NACLIP(tiny_backbone, gaussian_std=0)
