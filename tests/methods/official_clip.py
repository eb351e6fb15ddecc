"""Re-derivations of the official training-free heads' forward passes (SCLIP, ClearCLIP,
NACLIP, ProxyCLIP), written from reading their released code, in their layout: OpenAI-CLIP
ViT tokens in L,N,D order, heads folded into the batch (``bsz * heads``), ``torch.bmm``.
They read the weights of an open_clip model directly, so a test can run them and a method
head on the same random weights. Not used by the package.
"""
import math

import torch
import torch.nn.functional as F


def interpolate_pos_encoding(table, n_patch_h, n_patch_w):
    """The positional resize of SCLIP/ClearCLIP/NACLIP/ProxyCLIP (and DINO): a 1+N,W table
    (class position first, square grid) resized bicubically by a scale factor of
    (grid + 0.1) / sqrt(N)."""
    n = int(math.sqrt(table.shape[0] - 1))
    dim = table.shape[-1]
    h0, w0 = n_patch_h + 0.1, n_patch_w + 0.1
    patch = F.interpolate(table[1:].reshape(1, n, n, dim).permute(0, 3, 1, 2),
                          scale_factor=(h0 / n, w0 / n), mode='bicubic')
    assert int(h0) == patch.shape[-2] and int(w0) == patch.shape[-1]
    return torch.cat([table[:1], patch.permute(0, 2, 3, 1).reshape(-1, dim)])


def tokens_before_last(visual, images, pos=None):
    """L,N,W residual stream entering the last block (conv1, class token, positions, ln_pre,
    every block but the last). ``pos``: the 1+h*w,W table to add (default: the native one)."""
    x = visual.conv1(images)
    x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
    cls = visual.class_embedding + torch.zeros(x.shape[0], 1, x.shape[-1])
    x = torch.cat([cls, x], dim=1)
    x = x + (visual.positional_embedding if pos is None else pos)
    x = visual.ln_pre(x)
    for blk in visual.transformer.resblocks[:-1]:
        x = blk(x)                      # open_clip blocks take N,L,D; the arithmetic is the same
    return x.permute(1, 0, 2)


def folded_qkv(attn_layer, x):
    """q, k, v of an nn.MultiheadAttention on L,N,W tokens, each (N*heads),L,d."""
    length, bsz, width = x.shape
    heads = attn_layer.num_heads
    q, k, v = F.linear(x, attn_layer.in_proj_weight, attn_layer.in_proj_bias).chunk(3, dim=-1)
    return [t.contiguous().view(-1, bsz * heads, width // heads).transpose(0, 1)
            for t in (q, k, v)]


def unfold(attn_layer, out, bsz):
    """(N*heads),L,d attended values -> out_proj(...) as L,N,W."""
    width = out.shape[-1] * attn_layer.num_heads
    return attn_layer.out_proj(out.transpose(0, 1).contiguous().view(-1, bsz, width))


def sclip_attn(attn_layer, x):
    """SCLIP clip/model.py custom_attn(csa=True)."""
    q, k, v = folded_qkv(attn_layer, x)
    scale = q.shape[-1] ** -0.5
    w = (F.softmax(torch.bmm(q, q.transpose(1, 2)) * scale, dim=-1)
         + F.softmax(torch.bmm(k, k.transpose(1, 2)) * scale, dim=-1))
    return unfold(attn_layer, torch.bmm(w, v), x.shape[1])


def clearclip_attn(attn_layer, x):
    """ClearCLIP open_clip/transformer.py custom_attn(model_type='ClearCLIP')."""
    q, k, v = folded_qkv(attn_layer, x)
    w = F.softmax(torch.bmm(q, q.transpose(1, 2)) * q.shape[-1] ** -0.5, dim=-1)
    return unfold(attn_layer, torch.bmm(w, v), x.shape[1])


def naclip_window(d1, d2, std):
    """NACLIP gaussian_window: exp(-squared distance to the centre / (2 std^2)) on d1 x d2."""
    c = 1 / (std * math.sqrt(2))
    ks = []
    for d in (d1, d2):
        start = -(d - 1) / 2.0
        ks.append(torch.linspace(start * c, (start + d - 1) * c, d))
    return torch.exp(-(torch.stack(torch.meshgrid(*ks, indexing='ij')) ** 2).sum(0))


def naclip_addition(h, w, window):
    """NACLIP get_attention_addition: the window convolved over one-hot patch maps, the class
    token's row and column zero."""
    m = torch.einsum('ij,kl->ijkl', torch.eye(h), torch.eye(w)).permute(0, 3, 1, 2).contiguous()
    out = F.conv2d(m.view(-1, h, w).unsqueeze(1), window[None, None], padding='same')
    out = out.squeeze(1).view(h * w, h * w)
    out = torch.vstack([torch.zeros(1, h * w), out])
    return torch.hstack([torch.zeros(h * w + 1, 1), out])


def naclip_attn(attn_layer, x, grid, std=5.0):
    """NACLIP clip/model.py custom_attn(attn_strategy='naclip')."""
    q, k, v = folded_qkv(attn_layer, x)
    window = naclip_window(2 * grid[0] - 1, 2 * grid[1] - 1, std)
    omega = naclip_addition(*grid, window).unsqueeze(0)
    w = torch.bmm(k, k.transpose(1, 2)) * q.shape[-1] ** -0.5 + omega
    return unfold(attn_layer, torch.bmm(F.softmax(w, dim=-1), v), x.shape[1])


def proxyclip_attn(attn_layer, x, ex_feats, token_size, beta=1.2, gamma=3.0):
    """ProxyCLIP open_clip/transformer.py custom_attn: the proxy features ex_feats (N,C,H,W)
    give one attention for every head; the values of the patches are resized to H x W."""
    length, bsz, width = x.shape
    heads = attn_layer.num_heads
    _, _, v = folded_qkv(attn_layer, x)
    _, _, H, W = ex_feats.shape
    f = F.normalize(ex_feats.flatten(2, 3), dim=1)
    sim = torch.einsum('b c m, b c n -> b m n', f, f)
    sim = (sim - torch.mean(sim) * beta) * gamma
    sim[sim < 0.0] = float('-inf')
    mask = sim.unsqueeze(1).repeat(1, heads, 1, 1).reshape(bsz * heads, H * W, H * W)
    w = F.softmax(mask, dim=-1)
    v = v[:, 1:, :].reshape(bsz * heads, token_size[0], token_size[1], -1).permute(0, 3, 1, 2)
    v = F.interpolate(v, size=(H, W), mode='bilinear', align_corners=False)
    v = v.permute(0, 2, 3, 1).reshape(bsz * heads, H * W, -1)
    return unfold(attn_layer, torch.bmm(w, v), bsz)


def patch_logits(visual, x, class_embeds, grid, drop_cls=True):
    """ln_post + proj on L,N,W tokens, class token dropped, normalised, vs the class
    embeddings -> N,K,h,w (the official forward_feature before its upsampling)."""
    feats = visual.ln_post(x.permute(1, 0, 2)) @ visual.proj
    if drop_cls:
        feats = feats[:, 1:]
    feats = feats / feats.norm(dim=-1, keepdim=True)
    logits = feats @ class_embeds.T
    return logits.permute(0, 2, 1).reshape(-1, logits.shape[-1], *grid)


def agreement(ours, ref):
    """(max abs difference, fraction of pixels with the same argmax class)."""
    return ((ours - ref).abs().max().item(),
            (ours.argmax(1) == ref.argmax(1)).float().mean().item())


def embeds(k, dim, seed=3):
    return F.normalize(torch.randn(k, dim, generator=torch.Generator().manual_seed(seed)), dim=-1)


def compare(backbone, size, official, head, k=7):
    """(max abs diff, argmax agreement) of head vs the official forward on random images.
    Off the native grid the official forward resizes positions its own way when the backbone
    does too (``pos_interpolation='dino'``), else it is given the backbone's table."""
    h, w = size[0] // backbone.patch_size, size[1] // backbone.patch_size
    images = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(1))
    text = embeds(k, backbone.embed_dim)
    native = backbone.image_size // backbone.patch_size
    pos = None
    if (h, w) != (native, native):
        table = backbone.model.visual.positional_embedding
        pos = (interpolate_pos_encoding(table, h, w) if backbone.pos_interpolation == 'dino'
               else backbone.interpolate_pos_embed(h, w))
    with torch.no_grad():
        ours = head.predict_dense(images, text)
        ref = official(backbone.model.visual, images, text, (h, w), pos)
    assert ours.shape == ref.shape == (2, k, h, w)
    return agreement(ours, ref)


def assert_matches_official(backbone, size, official, head):
    """The head equals the official forward (:func:`compare`): max abs diff <= 1e-4 and every
    argmax label the same."""
    diff, agree = compare(backbone, size, official, head)
    assert diff <= 1e-4 and agree == 1.0, (diff, agree)


def maskclip_released_last_block(visual, x):
    """MaskCLIP's mmseg ViT layer with return_qkv (chongzhou96/MaskCLIP backbones/vit.py) on
    L,N,W tokens: q, k, v each through out_proj, v plus the block input, plus the FFN."""
    blk = visual.transformer.resblocks[-1]
    x = x.permute(1, 0, 2)                                          # N,L,W as mmseg runs it
    y = F.linear(blk.ln_1(x), blk.attn.in_proj_weight, blk.attn.in_proj_bias)
    n, length, c3 = y.shape
    y = y.view(n, length, 3, c3 // 3).permute(2, 0, 1, 3).reshape(3 * n, length, c3 // 3)
    y = F.linear(y, blk.attn.out_proj.weight, blk.attn.out_proj.bias)
    _, _, v = y.tensor_split(3, dim=0)
    v = v + x
    v = v + blk.mlp(blk.ln_2(v))
    return v.permute(1, 0, 2)


def clearclip_maskclip_attn(attn_layer, x):
    """ClearCLIP's custom_attn(model_type='MaskCLIP'): a diagonal attention (each token attends
    to itself alone), i.e. out_proj of the values."""
    q, k, v = folded_qkv(attn_layer, x)
    mask = torch.full((q.shape[1], q.shape[1]), float('-inf'))
    mask.fill_diagonal_(0)
    w = F.softmax(mask.unsqueeze(0).repeat(q.shape[0], 1, 1), dim=-1)
    return unfold(attn_layer, torch.bmm(w, v), x.shape[1])
