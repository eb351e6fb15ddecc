import torch

from ovseg_bench.inference import (dense_inference, precision_context, slide_inference,
                                  window_starts)


def test_windows_cover_every_pixel_and_end_aligned():
    for size, crop, stride in [(96, 64, 32), (100, 64, 32), (64, 64, 32), (50, 64, 32)]:
        starts = window_starts(size, crop, stride)
        covered = torch.zeros(size)
        for s in starts:
            covered[s:s + crop] = 1
        assert covered.all()
        assert starts[-1] + min(crop, size) == size


def test_slide_of_pointwise_fn_equals_whole():
    torch.manual_seed(0)
    images = torch.randn(2, 3, 70, 100)
    fn = lambda x: x[:, :2] * 2  # noqa: E731  pointwise: stitching must reproduce it exactly
    whole = dense_inference(fn, images, 'whole')
    slide = dense_inference(fn, images, 'slide', crop=32, stride=20, window_batch=5)
    assert torch.allclose(whole, slide, atol=1e-6)
    assert slide.shape == (2, 2, 70, 100)


def test_slide_batches_windows_and_matches_per_window_loop():
    torch.manual_seed(0)
    images = torch.randn(2, 3, 48, 64)
    calls = []

    def fn(x):  # a non-pointwise fn at lower resolution (like a ViT: one logit per 8x8 patch)
        calls.append(x.shape[0])
        return torch.nn.functional.avg_pool2d(x[:, :2], 8) + x[:, :2].mean((2, 3), True)

    out = slide_inference(fn, images, crop=32, stride=16, multiple=8, window_batch=64)
    n_windows = len(window_starts(48, 32, 16)) * len(window_starts(64, 32, 16))
    assert calls == [2 * n_windows]  # every window of both images in one forward pass
    ref = torch.zeros_like(out)
    count = torch.zeros(1, 1, 48, 64)
    for y in window_starts(48, 32, 16):
        for x in window_starts(64, 32, 16):
            win = fn(images[:, :, y:y + 32, x:x + 32])
            win = torch.nn.functional.interpolate(win, size=(32, 32), mode='bilinear')
            ref[:, :, y:y + 32, x:x + 32] += win
            count[:, :, y:y + 32, x:x + 32] += 1
    assert torch.allclose(out, ref / count, atol=1e-5)


def test_windows_padded_to_patch_multiple():
    images = torch.randn(1, 3, 30, 45)
    seen = []

    def fn(x):
        seen.append(tuple(x.shape[-2:]))
        return x[:, :1]

    out = dense_inference(fn, images, 'whole', multiple=16)
    assert seen == [(32, 48)] and out.shape == (1, 1, 30, 45)


def test_per_window_loop_gives_the_batched_logits():
    """The naive reference (one forward per window of each image) and the batched path agree,
    for a non-pointwise function whose output resolution is below the input's."""
    torch.manual_seed(0)
    images = torch.randn(3, 3, 40, 72)
    calls = []

    def fn(x):
        calls.append(x.shape[0])
        return torch.nn.functional.avg_pool2d(x[:, :2], 8) * x[:, 2:3].std((2, 3), keepdim=True)

    batched = dense_inference(fn, images, 'slide', crop=32, stride=12, multiple=8,
                              window_batch=7)
    n_batched_calls = len(calls)
    naive = dense_inference(fn, images, 'slide', crop=32, stride=12, multiple=8,
                            batched=False)
    n_windows = len(window_starts(40, 32, 12)) * len(window_starts(72, 32, 12))
    assert calls[n_batched_calls:] == [1] * (3 * n_windows)   # one forward per window
    assert n_batched_calls == -(-3 * n_windows // 7)            # chunks of window_batch
    torch.testing.assert_close(naive, batched, atol=1e-6, rtol=1e-6)


def test_per_window_loop_gives_the_batched_logits_on_the_tiny_clip(tiny_backbone):
    """Same check through a real ViT (MaskCLIP's dense logits on the tiny open_clip model):
    batching windows must not change any window's logits."""
    torch.manual_seed(1)
    embeds = torch.nn.functional.normalize(torch.randn(5, tiny_backbone.embed_dim), dim=-1)

    def fn(x):
        patch = tiny_backbone.forward_dense(x, last_block='value').patch
        return torch.nn.functional.normalize(patch, dim=-1) @ embeds.t()

    def dense(x):
        return fn(x).permute(0, 3, 1, 2)

    images = torch.randn(2, 3, 80, 96)
    with torch.no_grad():
        batched = dense_inference(dense, images, 'slide', crop=64, stride=24, multiple=8)
        naive = dense_inference(dense, images, 'slide', crop=64, stride=24, multiple=8,
                                batched=False)
    assert batched.shape == (2, 5, 80, 96)
    torch.testing.assert_close(naive, batched, atol=1e-5, rtol=1e-5)


def test_precision_context():
    assert not torch.is_autocast_enabled('cpu')
    with precision_context('bf16', 'cpu'):
        assert torch.is_autocast_enabled('cpu')
        y = torch.nn.functional.linear(torch.randn(2, 4), torch.randn(3, 4))
    assert y.dtype == torch.bfloat16
    with precision_context('fp32', 'cpu'):
        assert not torch.is_autocast_enabled('cpu')
    import pytest
    with pytest.raises(ValueError, match='precision must be one of'):
        precision_context('fp16', 'cpu')
