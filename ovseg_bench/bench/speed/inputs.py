"""What the speed command measures on: methods built with their own configs' options on a
random-weight backbone (speed does not depend on the weights; nothing is downloaded), and
synthetic images, class embeddings and training batches."""
import collections
import functools
import inspect
from pathlib import Path

import torch
import torch.nn.functional as F
from mmengine.config import Config

from ...backbones.base import RANDOM_WEIGHTS, drop_log_records
from ...config import CONFIG_ROOT
from ...registry import BACKBONES, METHODS, build
from ...text import DEFAULT_CACHE
from ..matrix import method_configs

REPO = Path(__file__).resolve().parents[3]
BACKBONE_MODELS = {'tiny': 'ovseg-tiny', 'vit-b16': 'ViT-B-16', 'vit-l14': 'ViT-L-14'}
CAPTIONS = ('a red circle on grass', 'a blue square on water', 'a star on brick',
            'a heart on sand', 'a ring on wood', 'a cross in the sky')

MethodSettings = collections.namedtuple('MethodSettings', 'method train pipeline')


def backbone_model(name):
    """An open_clip model name from a ``--backbones`` entry (alias or open_clip name)."""
    return BACKBONE_MODELS.get(name, name)


def backbone_cfg(name):
    """The config of a random-weight open_clip backbone (alias or open_clip name)."""
    return dict(type='OpenCLIPBackbone', model=backbone_model(name), pretrained=None)


def build_backbone(name, device):
    with drop_log_records(RANDOM_WEIGHTS):      # random on purpose
        return build(BACKBONES, backbone_cfg(name)).to(device)


@functools.lru_cache(maxsize=1)
def _method_config_paths():
    """({method: tiny-synthetic config}, {method: ViT-B/16 config}), parsed once."""
    return (method_configs(str(CONFIG_ROOT / '*' / '*_tiny_synth.py')),
            method_configs(str(CONFIG_ROOT / '*' / '*vit*b16*.py')))


def method_settings(method, backbone):
    """:class:`MethodSettings` (method dict, train dict, train pipeline) from the method's own
    config: its ``*_tiny_synth.py`` for the tiny backbone, its ViT-B/16 config (if it has
    one) for the others; a method without a config gets its defaults. A method that embeds
    class names itself (a ``templates`` option) does it with one template and the disk
    cache: it is computed once before timing, and the 80 templates would cost minutes per
    ViT on a CPU."""
    tiny, vit = _method_config_paths()
    found = tiny if backbone_model(backbone) == 'ovseg-tiny' else {**tiny, **vit}
    if method in found:
        cfg = Config.fromfile(found[method][0]).to_dict()   # the first, as sorted by path
        settings = MethodSettings(dict(cfg['method']), dict(cfg.get('train') or {}),
                                  list((cfg.get('train_data') or {}).get('pipeline') or []))
    else:
        settings = MethodSettings(dict(type=method), {}, [])
    params = inspect.signature(METHODS.get(method).__init__).parameters
    if 'templates' in settings.method:
        settings.method['templates'] = 'single'
    if 'text_cache' in params and settings.method.get('text_cache') is None:
        settings.method['text_cache'] = str(DEFAULT_CACHE)
    return settings


def build_head(method, backbone, device, seed=0):
    """``(head, train dict, train pipeline)``: the method head on a random ``backbone`` with
    its config's options (:func:`method_settings`)."""
    settings = method_settings(method, backbone)
    torch.manual_seed(seed)
    bb = build_backbone(backbone, 'cpu')
    head = build(METHODS, settings.method, backbone=bb).to(device)
    return head, settings.train, settings.pipeline


def synthetic_images(n, size, device, seed=0):
    """N,3,S,S standard-normal images (what normalised pixels look like to the model)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g).to(device)


def random_class_embeds(k, dim, device, seed=1):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(k, dim, generator=g), dim=-1).to(device)


def _multicrop_settings(pipeline):
    """(n_global, n_local, local/global size ratio) of the config's MultiCropViews."""
    for t in pipeline:
        if t.get('type') == 'MultiCropViews':
            return (int(t.get('n_global', 2)), int(t.get('n_local', 4)),
                    t['local_size'] / t['global_size'])
    return 2, 4, 0.5


def synthetic_train_batch(head, size, batch, pipeline=(), seed=0):
    """A training batch as the data pipeline would give it (uint8 RGB images, captions and
    every view in ``head.train_views``) at ``size``, on CPU; ``KeyError`` for a view this
    function does not know how to make."""
    g = torch.Generator().manual_seed(seed)
    patch = head.backbone.patch_size
    grid = size // patch

    def uint8_images(*shape):
        return torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)

    out = dict(images=uint8_images(batch, 3, size, size),
               captions=[CAPTIONS[i % len(CAPTIONS)] for i in range(batch)])
    views = tuple(head.train_views)
    if {'global_crops', 'local_crops', 'crop_boxes', 'crop_flips'} & set(views):
        n_global, n_local, ratio = _multicrop_settings(pipeline)
        local = max(patch, int(round(size * ratio / patch)) * patch)
        out['global_crops'] = uint8_images(batch, n_global, 3, size, size)
        out['local_crops'] = uint8_images(batch, n_local, 3, local, local)
        # Two overlapping global boxes (the second flipped) so the clustering pairs exist;
        # local boxes anywhere inside the image.
        s = float(size)
        boxes = [(0, 0, 0.75 * s, 0.75 * s), (0.25 * s, 0.25 * s, s, s)][:n_global]
        corners = torch.rand(n_local, 2, generator=g) * 0.6 * s
        boxes += [(x, y, x + 0.4 * s, y + 0.4 * s) for x, y in corners.tolist()]
        out['crop_boxes'] = torch.tensor(boxes, dtype=torch.float32).expand(batch, -1, -1)
        flips = torch.zeros(batch, n_global + n_local, dtype=torch.bool)
        flips[:, 1:n_global] = True
        out['crop_flips'] = flips
    for view in views:
        if view in out:
            continue
        if view == 'superpixels':
            # cells of 4 x 4 patches: about as many segments as Felzenszwalb gives
            cells = (torch.arange(grid) // 4)
            ids = cells[:, None] * ((grid + 3) // 4) + cells[None, :]
            out[view] = ids.expand(batch, -1, -1).clone()
        elif view == 'gt_seg':
            # blocks of S/8 pixels, each one class of the method's training label space
            # (``classes`` where the head has them) or ignore (255)
            n_labels = len(getattr(head, 'classes', ()) or ()) or 2
            blocks = torch.randint(0, n_labels + 1, (batch, 8, 8), generator=g)
            blocks[blocks == n_labels] = 255
            out[view] = F.interpolate(blocks[:, None].float(), size=(size, size),
                                      mode='nearest')[:, 0].long()
        elif view == 'mask':
            out[view] = torch.rand(batch, grid, grid, generator=g) < 0.5
        elif view == 'image_id':
            out[view] = torch.arange(batch)          # every item its own image
        else:
            raise KeyError(f'no synthetic {view!r} view (known: images, captions, '
                           f'global_crops, local_crops, crop_boxes, crop_flips, superpixels, '
                           f'gt_seg, mask, image_id)')
    return out


def slide_geometry(size, crop=None, stride=None):
    """Window size and stride of the slide mode: S/2 every S/4 (3 x 3 windows) by default."""
    crop = int(crop or size // 2)
    return crop, int(stride or max(1, crop // 2))

