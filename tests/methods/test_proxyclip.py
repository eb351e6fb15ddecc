"""ProxyCLIP against a re-derivation of its released forward (tests/methods/official_clip.py),
with random timm ViTs as the vision foundation model (a tiny one, and DINO ViT-B/8)."""
import pytest
import torch
from official_clip import (agreement, embeds, interpolate_pos_encoding, patch_logits,
                           proxyclip_attn, tokens_before_last)

from ovseg_bench_methods.proxyclip import ProxyCLIP

CLIP_MEAN01 = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD01 = [0.26862954, 0.26130258, 0.27577711]
IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


def col(values):
    return torch.tensor(values).view(1, 3, 1, 1)


def dino_last_layer(vit, images):
    """DINO's get_intermediate_layers(x, n=1)[0] (patch conv, class token, positions resized by
    its interpolate_pos_encoding off the native grid, every block, final norm), patch tokens
    as N,C,I,J."""
    x = vit.patch_embed.proj(images)
    b, c, i, j = x.shape
    x = torch.cat([vit.cls_token.expand(b, -1, -1), x.flatten(2).transpose(1, 2)], dim=1)
    native = tuple(vit.patch_embed.grid_size)
    pos = vit.pos_embed if (i, j) == native else interpolate_pos_encoding(vit.pos_embed[0], i, j)
    x = x + pos
    for blk in vit.blocks:
        x = blk(x)
    return vit.norm(x)[:, 1:].reshape(b, i, j, c).permute(0, 3, 1, 2)


def official_proxyclip(visual, vit, images, class_embeds, norm=IMAGENET, beta=1.2, gamma=3.0):
    """ProxyCLIPSegmentation.forward_feature with vfm_model='dino', one image at a time as
    its evaluation runs (batch 1): CLIP normalisation undone, ImageNet's (``norm``) applied, DINO's
    last-layer patch features as the proxy, the last CLIP block replaced by proxy attention
    over its values."""
    out = []
    for img in images:
        img = img[None]
        unnorm = img * col(CLIP_STD01) + col(CLIP_MEAN01)
        vfm_in = (unnorm - col(norm[0])) / col(norm[1])
        ex = dino_last_layer(vit, vfm_in)
        p = visual.conv1.weight.shape[-1]
        token_size = (img.shape[-2] // p, img.shape[-1] // p)
        native = visual.positional_embedding.shape[0] - 1
        pos = (None if token_size[0] * token_size[1] == native and token_size[0] == token_size[1]
               else interpolate_pos_encoding(visual.positional_embedding, *token_size))
        x = tokens_before_last(visual, img, pos)
        blk = visual.transformer.resblocks[-1]
        x = proxyclip_attn(blk.attn, blk.ln_1(x), ex, token_size, beta, gamma)
        out.append(patch_logits(visual, x, class_embeds, ex.shape[-2:], drop_cls=False))
    return torch.cat(out)


def check(backbone, vfm_cfg, size, batch=2):
    torch.manual_seed(5)
    head = ProxyCLIP(backbone, vfm=vfm_cfg).eval()
    images = torch.randn(batch, 3, *size, generator=torch.Generator().manual_seed(1))
    text = embeds(7, backbone.embed_dim)
    with torch.no_grad():
        ours = head.predict_dense(images, text)
        norm = [m / 255 for m in head.vfm.mean], [s / 255 for s in head.vfm.std]
        ref = official_proxyclip(backbone.model.visual, head.vfm.model, images, text, norm)
    p = head.vfm.patch_size
    assert ours.shape == ref.shape == (batch, 7, size[0] // p, size[1] // p)
    if vfm_cfg['model'].endswith('.dino'):     # DINO's released normalisation is ImageNet's
        torch.testing.assert_close(torch.tensor(norm), torch.tensor(IMAGENET))
    return agreement(ours, ref)


def test_matches_official_with_a_tiny_vfm(tiny_backbone):
    vfm = dict(type='TimmVFM', model='vit_tiny_patch16_224', img_size=64, patch_size=4,
               depth=2)
    diff, agree = check(tiny_backbone, vfm, (64, 64))
    assert diff <= 1e-4 and agree == 1.0, (diff, agree)


def test_matches_official_off_grid_with_its_positional_resize(tiny_dino_pos):
    vfm = dict(type='TimmVFM', model='vit_tiny_patch16_224', img_size=64, patch_size=4,
               depth=2, pos_interpolation='dino')
    diff, agree = check(tiny_dino_pos, vfm, (48, 96))
    assert diff <= 1e-4 and agree == 1.0, (diff, agree)


def test_matches_official_on_vit_b16_with_dino_vit_b8(vit_b16):
    vfm = dict(type='TimmVFM', model='vit_base_patch8_224.dino')
    diff, agree = check(vit_b16, vfm, (224, 224), batch=1)
    assert diff <= 1e-4 and agree == 1.0, (diff, agree)


def test_clip_as_its_own_proxy(tiny_backbone):
    head = ProxyCLIP(tiny_backbone).eval()
    x = torch.randn(2, 3, 48, 96, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        logits = head.predict_dense(x, embeds(7, tiny_backbone.embed_dim))
    assert logits.shape == (2, 7, 6, 12) and torch.isfinite(logits).all()
    # beta 0: no patch pair is masked; a large beta keeps only each patch's closest ones
    with torch.no_grad():
        loose = ProxyCLIP(tiny_backbone, beta=0.0).predict_dense(x, embeds(7, 128))
    assert (loose - logits).abs().max() > 1e-3


def test_vfm_needs_a_local_file(tmp_path):
    from ovseg_bench.backbones import TimmVFM
    with pytest.raises(FileNotFoundError, match='nowhere'):
        TimmVFM('vit_base_patch8_224.dino', pretrained=str(tmp_path / 'nowhere.pth'))
    with pytest.raises(ValueError, match='unknown timm model'):
        TimmVFM('vit_nope_patch8')
