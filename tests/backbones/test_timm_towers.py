"""open_clip CLIPs with timm image towers (SigLIP, EVA02-CLIP), the larger OpenAI-layout ViTs
(ViT-L/14@336) and the vision-foundation-model backbone (DINO, DINOv2 through timm): each builds
on random weights (nothing downloaded) and serves the dense interface; small inputs."""
import copy

import pytest
import torch
import torch.nn.functional as F

from ovseg_bench_methods.maskclip import MaskCLIP
from ovseg_bench_methods.sclip import SCLIP
from ovseg_bench.backbones import LastBlock, OpenCLIPBackbone, TimmVFM
from ovseg_bench.backbones.base import merge_heads, split_heads
from ovseg_bench.backbones.open_clip_timm import OpenCLIPTimmBackbone

TIMM_CLIPS = ['ViT-B-16-SigLIP', 'EVA02-B-16']


@pytest.fixture(scope='module', params=TIMM_CLIPS)
def timm_clip(request):
    torch.manual_seed(0)
    return OpenCLIPBackbone(request.param).eval()


def col(values):
    return torch.tensor(values).view(1, 3, 1, 1)


def embeds(k, dim):
    return F.normalize(torch.randn(k, dim, generator=torch.Generator().manual_seed(3)), dim=-1)


@torch.no_grad()
def test_timm_tower_serves_the_dense_interface(timm_clip):
    bb = timm_clip
    assert isinstance(bb, OpenCLIPTimmBackbone)
    assert bb.num_prefix_tokens == (0 if 'SigLIP' in bb.model_name else 1)
    x = torch.randn(2, 3, 32, 48, generator=torch.Generator().manual_seed(1))
    out = bb.forward_dense(x, layers=(0, bb.num_layers))
    assert out.patch.shape == (2, 2, 3, bb.embed_dim) and out.cls.shape == (2, bb.embed_dim)
    assert out.hidden[bb.num_layers].shape == (2, 2, 3, bb.width)
    # the pooled embedding is the library's own at the native size
    x224 = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(bb.encode_image(x224), bb.model.encode_image(x224))
    # per-block access rebuilds every block (rotary positions included for EVA02)
    tokens, _ = bb.embed(x)
    for i in range(bb.num_layers):
        q, k, v = (split_heads(t, bb.num_heads) for t in bb.qkv(tokens, i))
        y = tokens + bb.attn_proj(merge_heads(F.scaled_dot_product_attention(q, k, v)), i)
        y = y + bb.mlp(y, i)
        torch.testing.assert_close(y, bb.run_blocks(tokens, i, i + 1), atol=1e-4, rtol=1e-4)
        tokens = y
    full = LastBlock(lambda q, k, v, g: F.scaled_dot_product_attention(q, k, v), True, True)
    torch.testing.assert_close(bb.forward_dense(x, last_block=full).patch, out.patch,
                               atol=1e-4, rtol=1e-4)
    text = embeds(5, bb.embed_dim)
    twin = copy.deepcopy(bb)           # copies keep their adapter (CLIP-ZSS copies its CLIP)
    assert type(twin) is OpenCLIPTimmBackbone
    torch.testing.assert_close(twin.forward_dense(x).patch, out.patch)
    for head in (MaskCLIP(bb), SCLIP(bb)):
        logits = head.predict_dense(x, text)
        assert logits.shape == (2, 5, 2, 3) and torch.isfinite(logits).all()


@torch.no_grad()
def test_vit_l14_336_dense_through_maskclip():
    torch.manual_seed(0)
    bb = OpenCLIPBackbone('ViT-L-14-336').eval()
    assert (bb.patch_size, bb.width, bb.num_layers, bb.image_size, bb.embed_dim) == (
        14, 1024, 24, 336, 768)
    x = torch.randn(1, 3, 28, 42, generator=torch.Generator().manual_seed(1))
    logits = MaskCLIP(bb).predict_dense(x, embeds(5, bb.embed_dim))
    assert logits.shape == (1, 5, 2, 3) and torch.isfinite(logits).all()


@torch.no_grad()
@pytest.mark.parametrize('model,prefix', [('vit_base_patch8_224.dino', 1),
                                          ('vit_base_patch14_reg4_dinov2', 5)])
def test_vision_foundation_models_give_patch_features(model, prefix):
    vfm = TimmVFM(model)
    assert vfm.model.num_prefix_tokens == prefix and not vfm.training
    p = vfm.patch_size
    x = torch.randn(2, 3, 2 * p, 3 * p, generator=torch.Generator().manual_seed(1))
    feats = vfm.forward_patch(x)
    ref = vfm.model.forward_features(x)[:, prefix:]
    assert feats.shape == (2, 2, 3, vfm.width)
    torch.testing.assert_close(feats.flatten(1, 2), ref)
    with pytest.raises(ValueError, match='divisible'):
        vfm.forward_patch(torch.randn(1, 3, 2 * p + 1, 2 * p))
    if prefix > 1:       # DINO's positional resize needs DINO's layout (one class position)
        with pytest.raises(ValueError, match='pos_interpolation'):
            TimmVFM(model, pos_interpolation='dino')
    # CLIP-normalised images are re-normalised to the model's own statistics
    clip_mean, clip_std = (122.77, 116.75, 104.09), (68.5, 66.63, 70.32)
    pixels = torch.rand(1, 3, p, p) * 255
    as_clip = (pixels - col(clip_mean)) / col(clip_std)
    own = (pixels - col(vfm.mean)) / col(vfm.std)
    torch.testing.assert_close(vfm.renormalize(as_clip, clip_mean, clip_std), own)
