"""SegCLIP-specific tests on a tiny random CLIP (seconds)."""
import pytest
import torch
import torch.nn.functional as F

from ovseg_bench.registry import BACKBONES, METHODS, build, load_plugins

load_plugins()
from ovseg_bench_methods.segclip import (LOSSES, SegCLIP, patchify,  # noqa: E402
                                         straight_through_gumbel)

B, SIZE, GRID = 3, 64, 8   # ovseg-tiny: 64 px, patch 8


@pytest.fixture(scope='module')
def backbone_state():
    torch.manual_seed(0)
    bb = build(BACKBONES, dict(type='OpenCLIPBackbone', model='ovseg-tiny'))
    return bb.state_dict()


def make_head(backbone_state, **kwargs):
    bb = build(BACKBONES, dict(type='OpenCLIPBackbone', model='ovseg-tiny'))
    bb.load_state_dict(backbone_state)
    torch.manual_seed(0)
    return build(METHODS, dict(type='SegCLIP', **kwargs), backbone=bb)


def make_batch(superpixels=True):
    g = torch.Generator().manual_seed(1)
    batch = dict(images=torch.randn(B, 3, SIZE, SIZE, generator=g),
                 captions=['a red circle on grass', 'a blue square', 'stripes on sand'])
    if superpixels:
        # four superpixels per image: the quadrants of the patch grid
        q = torch.arange(GRID) // (GRID // 2)
        batch['superpixels'] = (q[:, None] * 2 + q[None, :]).expand(B, GRID, GRID).clone()
    return batch


def total_loss(out):
    return sum(v for k, v in out.items() if 'loss' in k)


def test_split_layer_default_is_proportional(backbone_state):
    head = make_head(backbone_state)
    assert head.split_layer == 3          # 10 of 12 -> 3 of 4
    with pytest.raises(ValueError):
        make_head(backbone_state, split_layer=4)
    with pytest.raises(ValueError, match='unknown loss_weights'):
        make_head(backbone_state, loss_weights=dict(kl=0))


def test_gradients_reach_centers_and_group_module(backbone_state):
    head = make_head(backbone_state).train()
    out = head.forward_train(make_batch())
    assert set(k for k in out if 'loss' in k) == {f'loss_{n}' for n in LOSSES}
    assert all(torch.isfinite(v).all() for v in out.values())
    total_loss(out).backward()
    assert head.group.centers.grad is not None and head.group.centers.grad.abs().sum() > 0
    for name, p in head.group.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    for name, p in head.decoder.named_parameters():
        assert p.grad is not None, name
    # the first-stage CLIP blocks are trained through the grouping too
    first = head.backbone.model.visual.transformer.resblocks[0]
    assert first.attn.in_proj_weight.grad.abs().sum() > 0


def test_assignment_hard_in_training_soft_in_eval(backbone_state):
    head = make_head(backbone_state, dense='soft')
    images = make_batch()['images']
    head.train()
    enc = head.encode_groups(images)
    hard = enc['hard']
    assert hard.shape == (B, GRID * GRID, 8)
    assert torch.equal(hard.detach(), F.one_hot(hard.detach().argmax(-1), 8).float())
    # straight-through: the hard forward carries the Gumbel-softmax's gradient
    assert hard.requires_grad
    head.eval()
    with torch.no_grad():
        enc = head.encode_groups(images)
        again = head.encode_groups(images)
    soft = enc['soft']
    assert torch.allclose(soft.sum(-1), torch.ones(B, GRID * GRID))
    assert (soft.max(-1).values < 1).all() and (soft > 0).all()      # soft, not one-hot
    assert torch.equal(enc['soft'], again['soft'])                   # no Gumbel noise in eval
    # dense='soft': the soft assignment times the center/class cosines
    classes = F.normalize(torch.randn(5, head.backbone.embed_dim), dim=-1)
    with torch.no_grad():
        logits = head.predict_dense(images, classes)
    expected = soft @ (F.normalize(enc['centers'], dim=-1) @ classes.t())
    assert torch.allclose(logits, expected.transpose(1, 2).reshape(B, 5, GRID, GRID), atol=1e-5)


def test_gumbel_is_one_hot_with_softmax_gradient():
    torch.manual_seed(0)
    logits = torch.randn(4, 6, 8, requires_grad=True)
    y = straight_through_gumbel(logits, 0.9, dim=-1)
    assert ((y == 0) | (y == 1)).all() and torch.equal(y.sum(-1), torch.ones(4, 6))
    (y * torch.randn_like(y)).sum().backward()
    assert logits.grad.abs().sum() > 0


@pytest.mark.parametrize('off', LOSSES)
def test_each_loss_can_be_switched_off(backbone_state, off):
    head = make_head(backbone_state, loss_weights={off: 0.0}).train()
    batch = make_batch(superpixels=off != 'superpixel')
    out = head.forward_train(batch)
    assert f'loss_{off}' not in out
    assert {f'loss_{n}' for n in LOSSES if n != off} == {k for k in out if 'loss' in k}
    total_loss(out).backward()
    if off == 'reconstruction':
        assert head.decoder is None
    if off == 'superpixel':    # the trainer then no longer asks the pipeline for superpixels
        assert head.train_views == ()
    if off == 'contrastive':   # the text tower is only reached through the contrastive loss
        text_grads = [p.grad for n, p in head.backbone.model.named_parameters()
                      if not n.startswith('visual.')]
        assert all(g is None for g in text_grads)


@pytest.mark.parametrize('only', LOSSES)
def test_each_loss_alone_trains_the_group_module(backbone_state, only):
    head = make_head(backbone_state, loss_weights={n: float(n == only) for n in LOSSES}).train()
    out = head.forward_train(make_batch())
    assert {k for k in out if 'loss' in k} == {f'loss_{only}'}
    total_loss(out).backward()
    assert head.group.key.weight.grad.abs().sum() > 0


def test_superpixel_kl_zero_iff_constant_within_superpixels():
    ids = torch.tensor([[0, 0, 1, 1]])
    same = F.one_hot(torch.tensor([[2, 2, 0, 0]]), 3).float()
    mixed = F.one_hot(torch.tensor([[2, 1, 0, 0]]), 3).float()
    assert SegCLIP.superpixel_kl(same, ids).abs() < 1e-7
    assert SegCLIP.superpixel_kl(mixed, ids) > 1e-3
    # ignored ids (< 0) contribute nothing
    assert SegCLIP.superpixel_kl(mixed, torch.tensor([[0, -1, 1, 1]])).abs() < 1e-7


def test_reconstruction_only_scores_masked_patches(backbone_state):
    head = make_head(backbone_state, mask_ratio=0.75, norm_pix=False).train()
    images = make_batch()['images']
    target = patchify(images, 8)
    assert target.shape == (B, GRID * GRID, 8 * 8 * 3)
    assert torch.equal(target[0, 1], images[0, :, 0:8, 8:16].permute(1, 2, 0).reshape(-1))
    seen = {}

    def exact_on_masked(centers, assign, keep, grid):
        seen['keep'], seen['grid'] = keep, grid
        pred = target.clone()
        junk = torch.full_like(pred, 1e3)     # wrong on every visible patch
        return pred.scatter(1, keep[..., None].expand(-1, -1, pred.shape[-1]), junk)

    head.decoder.forward = exact_on_masked
    assert head.reconstruction(images).abs() < 1e-6
    assert seen['keep'].shape == (B, GRID * GRID // 4) and seen['grid'] == (GRID, GRID)
    head.decoder.forward = lambda centers, assign, keep, grid: target + 1.0
    assert torch.allclose(head.reconstruction(images), torch.tensor(1.0))


def test_predict_dense_shape_any_resolution(backbone_state):
    soft = make_head(backbone_state, dense='soft').eval()
    classes = F.normalize(torch.randn(7, soft.backbone.embed_dim), dim=-1)
    images = torch.randn(2, 3, 48, 80)
    with torch.no_grad():
        out = soft.predict_dense(images, classes)
    assert out.shape == (2, 7, 6, 10)
    assert out.abs().max() <= 1 + 1e-5     # convex combinations of cosines
    head = make_head(backbone_state).eval()      # dense='groupvit': pixel resolution
    with torch.no_grad():
        out = head.predict_dense(images, classes)
    assert out.shape == (2, 7, 48, 80)
    assert out.min() >= 0 and out.max() <= 1
    with pytest.raises(ValueError, match='dense must be'):
        make_head(backbone_state, dense='hard')


def _official_window(head, image, text, bg_thresh):
    """Re-derivation of the authors' evaluator on one window (GroupViT's rule, their
    seg_segmentation/evaluation/vit_seg.py encode_decode, with background): returns the
    K+1,H,W prediction logits, class 0 the background."""
    enc = head.encode_groups(image)
    h, w = enc['grid']
    size = image.shape[-2:]
    attn = enc['soft'][0].t().reshape(1, -1, h, w)                    # 1,G,h,w
    attn = F.interpolate(attn, size=size, mode='bilinear', align_corners=False)[0]
    attn = attn.permute(1, 2, 0)                                      # H,W,G
    onehot = F.one_hot(attn.argmax(-1), attn.shape[-1]).float()
    groups = F.normalize(enc['centers'][0], dim=-1)
    avg = F.normalize(enc['image'], dim=-1)
    scale = head.backbone.logit_scale.clamp(max=100)
    aff = groups @ text.t() * scale
    pre = F.softmax(aff, dim=-1)
    avg_aff = F.softmax(avg @ text.t() * scale, dim=-1)
    mask = torch.zeros_like(avg_aff)
    top = avg_aff.topk(dim=-1, k=min(5, len(text)))
    mask.scatter_add_(-1, top.indices, torch.ones_like(top.values))
    aff = aff.masked_fill(~mask.bool(), float('-inf'))
    aff = F.softmax(aff, dim=-1) * pre                                # 1..G,K
    pred = torch.zeros(len(text) + 1, *size)
    pixel = onehot @ aff                                              # H,W,K
    pred[1:] = pixel.permute(2, 0, 1)
    cap = min(bg_thresh, aff.max().item())
    pred[0][pixel.max(-1).values < cap] = 1
    return pred


@pytest.mark.parametrize('bg_thresh', [0.8, 0.25, 0.0])
def test_groupvit_dense_and_background_equal_the_authors_evaluator(backbone_state, bg_thresh):
    """predict_dense (dense='groupvit') and the protocol's group-score background give the
    authors' evaluator's logits on a window: same scores, same labels."""
    from ovseg_bench.segmentor import group_score_background
    from ovseg_bench.text import merge_synonyms
    head = make_head(backbone_state).eval()
    g = torch.Generator().manual_seed(5)
    text = F.normalize(torch.randn(9, head.backbone.embed_dim, generator=g), dim=-1)
    image = torch.randn(1, 3, 64, 64, generator=g)
    with torch.no_grad():
        want = _official_window(head, image, text, bg_thresh)
        scores = head.predict_dense(image, text)
        # class 0 (background) has no text: merge_synonyms fills it, the protocol decides it
        ours = merge_synonyms(scores, torch.arange(1, 10), 10)
        ours = group_score_background(ours, bg_thresh)[0]
    assert torch.allclose(ours[1:], want[1:], atol=1e-6)
    assert torch.equal(ours.argmax(0), want.argmax(0))
    if bg_thresh == 0.8:
        assert (want.argmax(0) == 0).any()


def test_config_pipeline_feeds_the_head(backbone_state, synth_root):
    """The tiny config's train pipeline (crop + Superpixels) gives per-patch ids on the
    patch grid, and a collated, normalised batch trains."""
    from mmengine.config import Config

    from ovseg_bench.data.image_text import CocoCaptionDataset, image_text_collate
    from ovseg_bench.engine.trainer import ViewNormalizer
    cfg = Config.fromfile('configs/segclip/segclip_tiny_synth.py')
    data = dict(cfg.train_data)
    data.pop('type')
    data['data_root'] = str(synth_root / 'coco')
    ds = CocoCaptionDataset(**data)
    head = make_head(backbone_state, **{k: v for k, v in cfg.method.items() if k != 'type'})
    batch = image_text_collate([ds[i] for i in range(3)])
    assert batch['superpixels'].shape == (3, GRID, GRID)
    batch = ViewNormalizer(head.backbone.mean, head.backbone.std,
                           ('images',) + head.train_views)(batch)
    out = head.train().forward_train(batch)
    assert {f'loss_{n}' for n in LOSSES} <= set(out)




def test_contrastive_loss_uses_every_process_rows(backbone_state, monkeypatch):
    """The contrastive loss goes through the shared gather (the authors' ``dist_collect``):
    with another process's two image/caption rows appended by the gather, this process's
    loss is the InfoNCE of its rows against all four, positives at ``B * rank``. (The gather
    itself is checked on two gloo processes in tests/test_losses.py.)"""
    from ovseg_bench import losses
    g = torch.Generator().manual_seed(3)
    other = {}

    def fake_gather(x):
        key = x.shape[-1]
        other.setdefault(key, F.normalize(torch.randn(2, key, generator=g), dim=-1))
        return torch.cat([other[key], x]), 2          # this process is rank 1 of 2

    head = make_head(backbone_state, loss_weights=dict(reconstruction=0, superpixel=0)).eval()
    batch = make_batch(superpixels=False)
    batch = dict(images=batch['images'][:2], captions=batch['captions'][:2])
    monkeypatch.setattr(losses, 'all_gather_rows', fake_gather)
    with torch.no_grad():
        loss = head.forward_train(batch)['loss_contrastive']
        image = F.normalize(head.encode_image(batch['images']), dim=-1)
        tokens = head.backbone.tokenize(batch['captions'])
        text = F.normalize(head.backbone.encode_text(tokens), dim=-1)
    scale = head.backbone.logit_scale.clamp(max=100)
    all_img = torch.cat([other[image.shape[-1]], image])
    all_txt = torch.cat([other[text.shape[-1]], text])
    target = torch.tensor([2, 3])
    want = (F.cross_entropy(scale * image @ all_txt.t(), target)
            + F.cross_entropy(scale * text @ all_img.t(), target)) / 2
    assert loss.item() == pytest.approx(want.item(), rel=1e-5)
    assert not make_head(backbone_state, gather=False).gather


PAPER_CONFIG = 'configs/segclip/segclip_vit_b16_cc3m_coco.py'


def test_paper_config_pins_the_paper_values():
    """The paper's (and the authors' launch command's) hyper-parameters, one by one."""
    from pathlib import Path

    from mmengine.config import Config
    root = Path(__file__).resolve().parents[2]
    cfg = Config.fromfile(root / PAPER_CONFIG)
    m, t = cfg.method, cfg.train
    assert (m.split_layer, m.num_centers, m.tau, m.mask_ratio) == (10, 8, 0.9, 0.75)
    assert (m.norm_pix, m.caption_tokens, m.dense) == (False, 32, 'groupvit')
    assert t.precision == 'fp32'                # the authors force AMP off
    assert m.cross_layers == 2 and m.decoder_layers == 3
    assert (t.lr, t.lr * t.backbone_lr_mult) == (4e-3, pytest.approx(4e-6))
    assert t.warmup_iters / t.iters == pytest.approx(0.15, abs=1e-3)
    assert (t.weight_decay, tuple(t.betas), t.eps, t.grad_clip) == (0.05, (0.9, 0.98), 1e-6, 1.0)
    # batch 96 per process x 8 processes = the authors' 768
    assert t.batch_size == 96
    assert '--nproc_per_node 8' in (root / PAPER_CONFIG).read_text()
    assert all(rule == dict(lr_mult=1.0) for rule in t.custom_keys.values())
    assert sorted(t.custom_keys) == ['visual.ln_post.', 'visual.proj',
                                     'visual.transformer.resblocks.10.',
                                     'visual.transformer.resblocks.11.']
    assert sorted(t.frozen) == ['visual.conv1.', 'visual.positional_embedding']


def test_paper_config_learning_rate_groups_on_vit_b16():
    """On the real ViT-B/16 architecture (random weights): CLIP's image blocks 11-12,
    ln_post and proj learn at 4e-3 with the new modules; conv1 and the positional embedding
    are frozen; everything else of CLIP learns at 4e-6 (the authors' main_task_align.py)."""
    from pathlib import Path

    from mmengine.config import Config

    from ovseg_bench.engine import trainer as T
    cfg = Config.fromfile(Path(__file__).resolve().parents[2] / PAPER_CONFIG)
    t = cfg.train
    model = T.TrainModel(dict(cfg.backbone, pretrained=None), cfg.method, frozen=t.frozen)
    groups = T.param_groups(model.head, t.lr, t.weight_decay, t.backbone_lr_mult,
                            t.custom_keys)
    lr_of = {id(p): g['lr'] for g in groups for p in g['params']}
    v = 'backbone.model.visual.'
    for name, p in model.head.named_parameters():
        if name in (v + 'conv1.weight', v + 'positional_embedding'):
            assert not p.requires_grad and id(p) not in lr_of, name
            continue
        fast = (not name.startswith('backbone.') or name.startswith(v + 'ln_post.')
                or name == v + 'proj'
                or name.startswith((v + 'transformer.resblocks.10.',
                                    v + 'transformer.resblocks.11.')))
        assert lr_of[id(p)] == pytest.approx(4e-3 if fast else 4e-6), name


def test_captions_cut_to_the_papers_32_tokens(backbone_state):
    """SOT + the first 30 words + EOT, as the authors' max_words=32; short captions keep
    their tokens."""
    from ovseg_bench_methods.segclip import truncate_tokens
    head = make_head(backbone_state)
    long = ' '.join(f'word{i}' for i in range(60))
    tokens = head.backbone.tokenize([long, 'a red circle'])
    cut = truncate_tokens(tokens, 32)
    assert cut.shape == (2, 32)
    assert torch.equal(cut[0, :31], tokens[0, :31])
    assert cut[0, 31] == tokens[0].max()                    # the end token closes the row
    assert torch.equal(cut[1], tokens[1, :32])
    assert truncate_tokens(tokens, 77) is tokens
    head = make_head(backbone_state, caption_tokens=32,
                     loss_weights=dict(reconstruction=0, superpixel=0)).eval()
    seen = {}
    encode = head.backbone.encode_text

    def recording(t):
        seen['t'] = t
        return encode(t)

    head.backbone.encode_text = recording
    head.forward_train(dict(images=torch.randn(2, 3, SIZE, SIZE), captions=[long, 'a cat']))
    assert seen['t'].shape == (2, 32)
