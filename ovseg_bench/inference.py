"""Whole-image and sliding-window dense inference, shared by every method.

A method only maps a batch of normalised images to B,K,h,w logits at any resolution
(``dense_fn``). Here every window of every image in the batch is cut out at once, padded to a
multiple of the patch size, run through ``dense_fn`` in chunks of ``window_batch`` windows,
upsampled back and averaged where windows overlap: no Python loop per window. The per-window
loop (``batched=False``: one forward per window of each image) is kept as the naive reference
that the speed benchmark compares against; both give the same logits.
"""
import contextlib

import torch
import torch.nn.functional as F

from .protocol import MODES, PADS, PRECISIONS


def precision_context(precision, device_type):
    """The autocast context of a protocol ``precision``: ``fp32`` runs as is; ``bf16``
    autocasts (matmuls and convolutions in bfloat16, reductions in float32), on CUDA, or on
    CPU where it is allowed but rarely faster."""
    if precision not in PRECISIONS:
        raise ValueError(f'precision must be one of {PRECISIONS}, got {precision!r}')
    if precision == 'fp32':
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, dtype=torch.bfloat16)


def window_starts(size, crop, stride):
    """Start offsets covering ``0..size`` with windows of ``crop`` every ``stride``; the last
    window is aligned to the end (as mmseg's slide inference does)."""
    if size <= crop:
        return [0]
    n = (size - crop + stride - 1) // stride + 1
    return [min(i * stride, size - crop) for i in range(n)]



def pad_sizes(h, w, multiple, pad):
    """(left, right, top, bottom) zero padding that brings h,w to a multiple of ``multiple``:
    all at the end (``'end'``) or split around, the smaller half first (``'center'``)."""
    ph, pw = (-h) % multiple, (-w) % multiple
    if pad == 'center':
        return pw // 2, pw - pw // 2, ph // 2, ph - ph // 2
    return 0, pw, 0, ph


def run_windows(dense_fn, windows, multiple, window_batch, pad='end'):
    """Logits for N,3,h,w windows at the windows' own resolution.

    Off the ``multiple`` grid, a window is zero-padded (``pad='end'`` or ``'center'``) and its
    logits cut back out, or (``'none'``) cut down to the grid, as a strided patch embedding
    does, and its logits stretched over the whole window.
    """
    if pad not in PADS:
        raise ValueError(f'window_pad must be one of {PADS}, got {pad!r}')
    h, w = windows.shape[-2:]
    if pad == 'none':
        fh, fw = h - h % multiple, w - w % multiple
        if not fh or not fw:
            raise ValueError(f'a {h}x{w} window is smaller than one {multiple}px patch')
        return torch.cat([F.interpolate(dense_fn(chunk).float(), size=(h, w), mode='bilinear',
                                        align_corners=False)
                          for chunk in windows[..., :fh, :fw].split(window_batch)])
    left, right, top, bottom = pad_sizes(h, w, multiple, pad)
    padded = F.pad(windows, (left, right, top, bottom)) if right or bottom else windows
    outs = []
    for chunk in padded.split(window_batch):
        logits = dense_fn(chunk).float()
        logits = F.interpolate(logits, size=padded.shape[-2:], mode='bilinear',
                               align_corners=False)
        outs.append(logits[..., top:top + h, left:left + w])
    return torch.cat(outs)


def window_boxes(height, width, crop, stride):
    """``(crop_h, crop_w), [(y, x), ...]``: the window size (clipped to the image) and the top
    left corner of every window, row-major."""
    ch, cw = (crop, crop) if isinstance(crop, int) else crop
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    ch, cw = min(ch, height), min(cw, width)
    boxes = [(y, x) for y in window_starts(height, ch, sh) for x in window_starts(width, cw, sw)]
    return (ch, cw), boxes


def slide_inference(dense_fn, images, crop, stride, multiple=1, window_batch=64, batched=True,
                    pad='end'):
    """B,K,H,W logits from overlapping ``crop`` windows taken every ``stride`` pixels.

    ``batched=False`` runs the naive loop instead: one forward per window of each image.
    """
    if not batched:
        return slide_inference_per_window(dense_fn, images, crop, stride, multiple, pad)
    b, _, h, w = images.shape
    (ch, cw), boxes = window_boxes(h, w, crop, stride)
    # B*n windows, image-major, all cut in one gather.
    windows = torch.stack([images[:, :, y:y + ch, x:x + cw] for y, x in boxes], 1)
    logits = run_windows(dense_fn, windows.flatten(0, 1), multiple, window_batch, pad)
    logits = logits.view(b, len(boxes), *logits.shape[1:])
    out = logits.new_zeros(b, logits.shape[2], h, w)
    count = logits.new_zeros(1, 1, h, w)
    for i, (y, x) in enumerate(boxes):
        out[:, :, y:y + ch, x:x + cw] += logits[:, i]
        count[:, :, y:y + ch, x:x + cw] += 1
    return out / count


def slide_inference_per_window(dense_fn, images, crop, stride, multiple=1, pad='end'):
    """The naive reference of :func:`slide_inference`: for each image, for each window, one
    forward pass, its logits added in place. Same windows, padding and upsampling."""
    b, _, h, w = images.shape
    (ch, cw), boxes = window_boxes(h, w, crop, stride)
    count = images.new_zeros(1, 1, h, w)
    for y, x in boxes:
        count[:, :, y:y + ch, x:x + cw] += 1
    out = None
    for i in range(b):
        for y, x in boxes:
            logits = run_windows(dense_fn, images[i:i + 1, :, y:y + ch, x:x + cw], multiple, 1,
                                 pad)
            if out is None:
                out = logits.new_zeros(b, logits.shape[1], h, w)
            out[i:i + 1, :, y:y + ch, x:x + cw] += logits
    return out / count


def dense_inference(dense_fn, images, mode='slide', crop=224, stride=112, multiple=1,
                    window_batch=64, batched=True, pad='end'):
    """``batched`` (slide only): all windows of the batch in chunks of ``window_batch`` per
    forward (True), or one forward per window of each image (False, the naive reference).
    ``pad``: how a window off the ``multiple`` grid is fed (:func:`run_windows`)."""
    if mode == 'whole':
        return run_windows(dense_fn, images, multiple, window_batch, pad)
    if mode == 'slide':
        return slide_inference(dense_fn, images, crop, stride, multiple, window_batch, batched,
                               pad)
    raise ValueError(f'inference mode must be one of {MODES}, got {mode!r}')
