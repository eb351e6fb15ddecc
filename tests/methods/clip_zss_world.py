"""What the CLIP-ZSS tests share: the synthetic COCO classes with an unseen split, a random
tiny CLIP, a head on it, and a scene with seen, unseen and void regions."""
import copy

import pytest
import torch

from ovseg_bench_methods.clip_zss import CLIPZSS
from ovseg_bench.backbones import OpenCLIPBackbone
from ovseg_bench.data.zero_shot import dataset_classes

CLASSES = dataset_classes('synth_coco')          # 8 things then 6 stuff
UNSEEN = ['diamond', 'heart', 'sky']
U = [CLASSES.index(c) for c in UNSEEN]
SEEN = [i for i in range(len(CLASSES)) if i not in U]


@pytest.fixture(scope='module')
def backbone():
    torch.manual_seed(0)
    return OpenCLIPBackbone('ovseg-tiny')      # random weights: shapes and wiring only


def make_head(backbone, **kw):
    torch.manual_seed(0)
    kw = {**dict(queue_size=16, templates='single', text_cache=None), **kw}
    return CLIPZSS(copy.deepcopy(backbone), 'synth_coco', UNSEEN, **kw)


def scene(b=2, size=64, seed=0):
    """Images and label maps with seen regions, unseen regions and a void stripe."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(b, 3, size, size, generator=g)
    gt = torch.full((b, size, size), SEEN[8], dtype=torch.long)       # a seen stuff class
    gt[:, :24, :24] = SEEN[0]                                         # a seen thing
    gt[:, 32:, 32:] = U[0]                                            # an unseen thing
    gt[:, 40:, :16] = U[2]                                            # unseen stuff
    gt[:, 28:30] = 255                                                # void
    images[:, :, 32:, 32:] += 2.0                                     # make it look different
    return images, gt


def batch_of(images, gt, ids=None):
    ids = torch.arange(len(images)) if ids is None else torch.as_tensor(ids)
    return dict(images=images, gt_seg=gt, image_id=ids)


def losses(head, images, gt):
    out = copy.deepcopy(head).forward_train(batch_of(images, gt))  # fresh memory bank
    return {k: v.detach() for k, v in out.items() if 'loss' in k}

