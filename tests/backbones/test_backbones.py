"""Contract tests for the CLIP adapters, on tiny random models (open_clip and transformers)."""
import json

import pytest
import torch
import torch.nn.functional as F

from ovseg_bench.backbones import HFCLIPBackbone, LastBlock, OpenCLIPBackbone
from ovseg_bench.backbones.base import merge_heads, split_heads
from ovseg_bench.registry import BACKBONES, build

ADAPTERS = ['open_clip', 'hf']
SIZES = [(64, 96), (96, 64)]


def make_hf_folder(folder, projection_dim=24):
    """A tiny transformers CLIP (64 px, patch 8, 2 blocks) and a letters-only tokenizer."""
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer
    letters = 'abcdefghijklmnopqrstuvwxyz'
    vocab = {c: i for i, c in enumerate(letters)}
    vocab.update({c + '</w>': len(letters) + i for i, c in enumerate(letters)})
    bos, eos = len(vocab), len(vocab) + 1   # end of text is the largest id, as in CLIP
    vocab.update({'<|startoftext|>': bos, '<|endoftext|>': eos})
    torch.manual_seed(0)
    cfg = CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=16,
                         bos_token_id=bos, eos_token_id=eos, pad_token_id=eos),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=2, image_size=64, patch_size=8),
        projection_dim=projection_dim)
    CLIPModel(cfg).save_pretrained(folder)
    CLIPTokenizer(vocab=vocab, merges=[]).save_pretrained(folder)
    return folder


@pytest.fixture(scope='module')
def hf_folder(tmp_path_factory):
    return make_hf_folder(tmp_path_factory.mktemp('hf_clip'))


def make(kind, hf_folder, **kw):
    torch.manual_seed(0)
    if kind == 'open_clip':
        return OpenCLIPBackbone('ovseg-tiny', **kw).eval()
    return HFCLIPBackbone(hf_folder, **kw).eval()


@pytest.fixture(scope='module', params=ADAPTERS)
def backbone(request, hf_folder):
    return make(request.param, hf_folder)


def images(h, w, b=2, seed=1):
    return torch.randn(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


def native_reference(bb, x):
    """(per-block patch tokens, projected last patch tokens, cls) from the library's own code."""
    if isinstance(bb, OpenCLIPBackbone):
        v = bb.model.visual
        inter = v.forward_intermediates(x, output_fmt='NLC', intermediates_only=True)
        blocks = inter['image_intermediates']
        return blocks, v.ln_post(blocks[-1]) @ v.proj, bb.model.encode_image(x)
    vm = bb.model.vision_model
    out = vm(pixel_values=x, output_hidden_states=True)
    blocks = [t[:, 1:] for t in out.hidden_states[1:]]
    cls = bb.model.get_image_features(pixel_values=x)
    cls = cls if torch.is_tensor(cls) else cls.pooler_output
    return blocks, bb.model.visual_projection(vm.post_layernorm(blocks[-1])), cls


def last_block_weights(bb):
    """The last block's ln_1, q/k/v weights and biases, out_proj, heads, and ln_post+proj."""
    if isinstance(bb, OpenCLIPBackbone):
        v = bb.model.visual
        blk = v.transformer.resblocks[-1]
        wq, wk, wv = blk.attn.in_proj_weight.chunk(3)
        bq, bk, bv = blk.attn.in_proj_bias.chunk(3)
        return (blk.ln_1, wq, bq, wk, bk, wv, bv, blk.attn.out_proj, blk.attn.num_heads,
                lambda t: v.ln_post(t) @ v.proj)
    blk = bb.model.vision_model.encoder.layers[-1]
    a = blk.self_attn
    return (blk.layer_norm1, a.q_proj.weight, a.q_proj.bias, a.k_proj.weight, a.k_proj.bias,
            a.v_proj.weight, a.v_proj.bias, a.out_proj, a.num_heads,
            lambda t: bb.model.visual_projection(bb.model.vision_model.post_layernorm(t)))


@torch.no_grad()
@pytest.mark.parametrize('size', SIZES)
def test_dense_shapes_for_non_square_inputs(backbone, size):
    h, w = size[0] // backbone.patch_size, size[1] // backbone.patch_size
    layers = tuple(range(backbone.num_layers + 1))
    for kind in backbone.LAST_BLOCKS:
        out = backbone.forward_dense(images(*size), layers=layers, last_block=kind)
        assert out.patch.shape == (2, h, w, backbone.embed_dim)
        assert out.cls.shape == (2, backbone.embed_dim)
        assert sorted(out.hidden) == list(layers)
        assert all(t.shape == (2, h, w, backbone.width) for t in out.hidden.values())
        assert torch.isfinite(out.patch).all()
    with pytest.raises(ValueError, match='divisible'):
        backbone.forward_dense(images(64, 60))
    with pytest.raises(ValueError, match='last_block'):
        backbone.forward_dense(images(64, 64), last_block='nope')
    with pytest.raises(ValueError, match='layers'):
        backbone.forward_dense(images(64, 64), layers=(backbone.num_layers + 1,))


@torch.no_grad()
def test_std_path_matches_the_library(backbone):
    x = images(64, 64)   # native size: the libraries' own forward applies
    blocks, patch_ref, cls_ref = native_reference(backbone, x)
    out = backbone.forward_dense(x, layers=range(1, backbone.num_layers + 1))
    for i, ref in enumerate(blocks, start=1):
        torch.testing.assert_close(out.hidden[i].flatten(1, 2), ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.patch.flatten(1, 2), patch_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.cls, cls_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(backbone.encode_image(x), cls_ref, atol=1e-5, rtol=1e-5)
    # the cls output is the standard one whatever the patch variant
    torch.testing.assert_close(backbone.forward_dense(x, last_block='value').cls, out.cls)


@torch.no_grad()
def test_last_block_variants_match_hand_written_references(backbone):
    ln_1, wq, bq, wk, bk, wv, bv, out_proj, heads, to_joint = last_block_weights(backbone)
    x = images(64, 96)
    n = backbone.num_layers
    tokens, (h, w) = backbone.embed(x)
    before_last = backbone.run_blocks(tokens, 0, n - 1)          # B, 1+hw, W
    y = ln_1(before_last)
    q, k, v = y @ wq.t() + bq, y @ wk.t() + bk, y @ wv.t() + bv

    def per_head(t):
        b, t_, c = t.shape
        return t.view(b, t_, heads, c // heads).transpose(1, 2)

    def softmax_scores(a, b):
        return (a @ b.transpose(-1, -2) * a.shape[-1] ** -0.5).softmax(-1)

    qh, kh, vh = per_head(q), per_head(k), per_head(v)
    mixed = {
        'value': vh,
        'vv': softmax_scores(vh, vh) @ vh,
        'csa': (softmax_scores(qh, qh) + softmax_scores(kh, kh)) @ vh,
    }
    for kind, o in mixed.items():
        o = o.transpose(1, 2).flatten(2)
        ref = to_joint(out_proj(o))[:, 1:].reshape(2, h, w, -1)
        got = backbone.forward_dense(x, last_block=kind).patch
        torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5, msg=kind)


@torch.no_grad()
def test_per_block_attention_access_rebuilds_every_block(backbone):
    """qkv / attn_proj / mlp are the blocks' own parts: the standard attention on them, with
    both residuals, gives back each block's output."""
    tokens, _ = backbone.embed(images(64, 96))
    heads = backbone.num_heads
    for i in range(backbone.num_layers):
        q, k, v = (split_heads(t, heads) for t in backbone.qkv(tokens, i))
        y = tokens + backbone.attn_proj(merge_heads(F.scaled_dot_product_attention(q, k, v)), i)
        y = y + backbone.mlp(y, i)
        torch.testing.assert_close(y, backbone.run_blocks(tokens, i, i + 1), atol=1e-5,
                                   rtol=1e-5, msg=f'block {i}')
        tokens = y


@torch.no_grad()
def test_last_block_function_is_the_named_variants_general_form(backbone):
    x = images(64, 96)
    grids = []

    def standard(q, k, v, grid):
        grids.append(grid)
        return F.scaled_dot_product_attention(q, k, v)
    full = LastBlock(standard, residual=True, mlp=True)
    torch.testing.assert_close(backbone.forward_dense(x, last_block=full).patch,
                               backbone.forward_dense(x).patch, atol=1e-5, rtol=1e-5)
    assert grids == [(64 // backbone.patch_size, 96 // backbone.patch_size)]
    values = LastBlock(lambda q, k, v, grid: v)
    assert torch.equal(backbone.forward_dense(x, last_block=values).patch,
                       backbone.forward_dense(x, last_block='value').patch)
    # residual without MLP: the block's first half
    half = backbone.forward_dense(x, last_block=LastBlock(standard, residual=True)).patch
    assert not torch.allclose(half, backbone.forward_dense(x).patch, atol=1e-3)


@torch.no_grad()
def test_positional_interpolation(hf_folder):
    for kind in ADAPTERS:
        bb = make(kind, hf_folder)
        table = bb._pos_table()
        gh, gw = bb._native_grid
        assert bb.interpolate_pos_embed(gh, gw) is table   # identity at the native grid
        small = bb.interpolate_pos_embed(gh + 2, gw - 3)
        assert small.shape == (1 + (gh + 2) * (gw - 3), bb.width)
        torch.testing.assert_close(small[0], table[0])     # the class position is kept
        assert bb.interpolate_pos_embed(gh + 2, gw - 3) is small   # cached
        table.add_(1.0)                                     # a weight change invalidates it
        torch.testing.assert_close(bb.interpolate_pos_embed(gh + 2, gw - 3), small + 1.0)


@torch.no_grad()
def test_dino_positional_resize(hf_folder):
    """pos_interpolation='dino': the scale-factor resize of the official training-free code,
    the same table at the native grid, another one off it; a wrong name fails at build."""
    for kind in ADAPTERS:
        size_bb, dino_bb = make(kind, hf_folder), make(kind, hf_folder, pos_interpolation='dino')
        gh, gw = size_bb._native_grid
        assert torch.equal(dino_bb.interpolate_pos_embed(gh, gw), size_bb._pos_table())
        table = dino_bb._pos_table()
        n, width = gh, table.shape[-1]
        ref = F.interpolate(table[1:].reshape(1, n, n, width).permute(0, 3, 1, 2),
                            scale_factor=((gh + 3.1) / n, (gw - 1.9) / n), mode='bicubic')
        ref = torch.cat([table[:1], ref.permute(0, 2, 3, 1).reshape(-1, width)])
        got = dino_bb.interpolate_pos_embed(gh + 3, gw - 2)
        torch.testing.assert_close(got, ref)
        assert not torch.allclose(got, size_bb.interpolate_pos_embed(gh + 3, gw - 2), atol=1e-4)
        with pytest.raises(ValueError, match='pos_interpolation'):
            make(kind, hf_folder, pos_interpolation='bilinear')


def test_missing_checkpoint_names_the_path(tmp_path):
    missing = tmp_path / 'nowhere' / 'clip.pt'
    with pytest.raises(FileNotFoundError, match='nowhere'):
        OpenCLIPBackbone('ovseg-tiny', pretrained=str(missing))
    with pytest.raises(FileNotFoundError, match='no_hf_folder'):
        HFCLIPBackbone(tmp_path / 'no_hf_folder')
    with pytest.raises(FileNotFoundError, match='cfg.json'):
        OpenCLIPBackbone(str(tmp_path / 'cfg.json'))


def test_checkpoint_with_wrong_shapes_names_the_keys(tmp_path, hf_folder):
    sd = OpenCLIPBackbone('ovseg-tiny').state_dict_for_export()
    sd['visual.proj'] = torch.zeros(3, 3)
    del sd['ln_final.weight']
    torch.save(sd, tmp_path / 'bad.pt')
    with pytest.raises(ValueError) as err:
        OpenCLIPBackbone('ovseg-tiny', pretrained=str(tmp_path / 'bad.pt'))
    assert 'visual.proj' in str(err.value) and 'ln_final.weight' in str(err.value)

    folder = make_hf_folder(tmp_path / 'hf_bad')
    cfg = json.loads((folder / 'config.json').read_text())
    cfg['projection_dim'] = 20
    (folder / 'config.json').write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match='visual_projection.weight'):
        HFCLIPBackbone(folder)


def test_checkpoint_of_another_architecture_names_file_keys_and_shapes(tmp_path):
    """ovseg-tiny weights given to ViT-B-16, in each format a user may have: an open_clip
    state dict, an OpenAI state dict (its extra entries) and an OpenAI-style TorchScript
    archive."""
    src = OpenCLIPBackbone('ovseg-tiny')
    sd = src.state_dict_for_export()
    torch.save(sd, tmp_path / 'open_clip_tiny.pt')
    torch.save(dict(sd, input_resolution=torch.tensor(64), context_length=torch.tensor(32),
                    vocab_size=torch.tensor(49408)), tmp_path / 'openai_tiny.pt')
    torch.jit.save(torch.jit.script(src.model), str(tmp_path / 'scripted_tiny.pt'))
    for name in ('open_clip_tiny.pt', 'openai_tiny.pt', 'scripted_tiny.pt'):
        with pytest.raises(ValueError) as err:
            OpenCLIPBackbone('ViT-B-16', pretrained=str(tmp_path / name))
        msg = str(err.value)
        assert str(tmp_path / name) in msg and 'ViT-B-16' in msg, msg
        assert 'width 128, patch 8, 4 blocks' in msg and 'width 768, patch 16, 12 blocks' in msg
        assert 'missing keys: visual.transformer.resblocks.4.' in msg
        assert 'visual.conv1.weight: checkpoint (128, 3, 8, 8) vs model (768, 3, 16, 16)' in msg

    # the other way round: a deeper checkpoint has keys the model lacks
    (tmp_path / 'deeper.json').write_text(json.dumps(dict(
        embed_dim=128, text_cfg=dict(context_length=32, vocab_size=49408, width=128, heads=4,
                                     layers=4),
        vision_cfg=dict(image_size=64, patch_size=8, width=128, layers=5, head_width=32))))
    torch.save(OpenCLIPBackbone(str(tmp_path / 'deeper.json')).state_dict_for_export(),
               tmp_path / 'deeper.pt')
    with pytest.raises(ValueError, match=r'unexpected keys: visual\.transformer\.resblocks\.4\.'):
        OpenCLIPBackbone('ovseg-tiny', pretrained=str(tmp_path / 'deeper.pt'))


def test_hf_folder_whose_weights_miss_layers_of_its_config(tmp_path):
    folder = make_hf_folder(tmp_path / 'hf_shallow')
    cfg = json.loads((folder / 'config.json').read_text())
    cfg['vision_config']['num_hidden_layers'] = 3        # the weights have 2
    (folder / 'config.json').write_text(json.dumps(cfg))
    with pytest.raises(ValueError) as err:
        HFCLIPBackbone(folder)
    msg = str(err.value)
    assert str(folder) in msg and '3 layers' in msg
    assert 'missing keys' in msg and 'vision_model.encoder.layers.2.' in msg


@torch.no_grad()
def test_save_load_round_trip(tmp_path, hf_folder):
    x = images(64, 96)
    src = make('open_clip', hf_folder)
    torch.save(src.state_dict_for_export(), tmp_path / 'plain.pt')
    # an mmengine-style checkpoint of a whole model, the CLIP under a prefix
    wrapped = {'backbone.model.' + k: v for k, v in src.state_dict_for_export().items()}
    wrapped['head.extra.weight'] = torch.zeros(2)
    torch.save({'state_dict': wrapped, 'meta': {'epoch': 1}}, tmp_path / 'wrapped.pth')
    tokens = src.tokenize(['a red circle', 'grass'])
    for name in ('plain.pt', 'wrapped.pth'):
        torch.manual_seed(123)   # another random init underneath
        dst = OpenCLIPBackbone('ovseg-tiny', pretrained=str(tmp_path / name)).eval()
        for kind in ('std', 'csa'):
            a, b = src.forward_dense(x, last_block=kind), dst.forward_dense(x, last_block=kind)
            assert torch.equal(a.patch, b.patch) and torch.equal(a.cls, b.cls)
        assert torch.equal(src.encode_text(tokens), dst.encode_text(tokens))
        assert src.fingerprint() == dst.fingerprint()

    # a TorchScript archive of an open_clip model keeps its activation (GELU) ...
    torch.jit.save(torch.jit.script(src.model), str(tmp_path / 'scripted.pt'))
    dst = OpenCLIPBackbone('ovseg-tiny', pretrained=str(tmp_path / 'scripted.pt')).eval()
    assert torch.equal(src.forward_dense(x).patch, dst.forward_dense(x).patch)
    # ... while an OpenAI checkpoint (its extra entries) is built with QuickGELU
    openai_sd = dict(src.state_dict_for_export(), input_resolution=torch.tensor(64),
                     context_length=torch.tensor(32), vocab_size=torch.tensor(49408))
    torch.save(openai_sd, tmp_path / 'openai.pt')
    dst = OpenCLIPBackbone('ovseg-tiny', pretrained=str(tmp_path / 'openai.pt'))
    assert type(dst.model.visual.transformer.resblocks[0].mlp.gelu).__name__ == 'QuickGELU'

    hf = make('hf', hf_folder)
    hf.model.save_pretrained(tmp_path / 'hf_copy')
    hf._tokenizer.save_pretrained(tmp_path / 'hf_copy')
    hf2 = HFCLIPBackbone(tmp_path / 'hf_copy').eval()
    assert torch.equal(hf.forward_dense(x).patch, hf2.forward_dense(x).patch)
    assert torch.equal(hf.tokenize(['a cat']), hf2.tokenize(['a cat']))


@torch.no_grad()
def test_text_side(backbone):
    tokens = backbone.tokenize(['a photo of a cat', 'dog'])
    assert tokens.dtype == torch.long and tokens.shape[0] == 2
    emb = backbone.encode_text(tokens)
    assert emb.shape == (2, backbone.embed_dim)
    assert not torch.allclose(F.normalize(emb[0], dim=0), F.normalize(emb[1], dim=0))
    assert backbone.logit_scale.ndim == 0 and backbone.logit_scale > 1
    assert len(backbone.mean) == len(backbone.std) == 3 and backbone.mean[0] > 1


def test_frozen_and_fingerprint(hf_folder):
    for kind in ADAPTERS:
        frozen = make(kind, hf_folder, frozen=True)
        assert not any(p.requires_grad for p in frozen.parameters())
        frozen.train()
        assert not frozen.training and not frozen.model.training

        bb = make(kind, hf_folder)
        assert all(p.requires_grad for p in bb.parameters())
        fp = bb.fingerprint()
        assert len(fp) == 12 and fp == bb.fingerprint()
        vision = next(p for n, p in bb.model.named_parameters() if 'vis' in n)
        vision.data.add_(1.0)
        assert bb.fingerprint() == fp                       # image-side weights do not count
        text = next(p for n, p in bb.model.named_parameters()
                    if n.startswith(('transformer.', 'text_model.encoder')))
        text.data.view(-1)[0] += 1e-3                       # an in-place edit, no version bump
        assert bb.fingerprint() != fp


def test_registry_builds_and_rejects_non_vit(tmp_path):
    bb = build(BACKBONES, dict(type='OpenCLIPBackbone', model='ovseg-tiny', frozen=True))
    assert isinstance(bb, OpenCLIPBackbone) and bb.patch_size == 8 and bb.image_size == 64
    text = dict(context_length=8, vocab_size=64, width=16, heads=2, layers=1)
    vit = tmp_path / 'my-vit.json'
    vit.write_text(json.dumps(dict(embed_dim=16, text_cfg=text, vision_cfg=dict(
        image_size=32, patch_size=16, width=16, layers=1, head_width=8))))
    bb = OpenCLIPBackbone(str(vit))
    assert bb.num_layers == 1 and bb.tokenize(['x']).shape == (1, 8)
    rn = tmp_path / 'my-rn.json'
    rn.write_text(json.dumps(dict(embed_dim=16, text_cfg=text, vision_cfg=dict(
        image_size=32, layers=[1, 1, 1, 1], width=8, head_width=8))))
    with pytest.raises(ValueError, match='ViT'):
        OpenCLIPBackbone(str(rn))
    with pytest.raises(ValueError, match='unknown open_clip model'):
        OpenCLIPBackbone('ViT-B-61')
