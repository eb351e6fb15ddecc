import torch

from ovseg_bench.inference import dense_inference, slide_inference, window_starts


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
