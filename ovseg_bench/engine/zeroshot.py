"""Zero-shot image classification of held-out captioned images (a pretraining sanity check).

For each image of a COCO captions file whose ``images`` entries list the classes present
(``classes``, as the synthetic world writes them), the predicted class is the one whose
prompt embedding is most similar to the image embedding, among the candidate classes (the
*thing* classes by default); it counts as correct when that class is present. Chance level
is the mean fraction of the candidate classes present per image: what a guess uniformly at
random would score.
"""
import json
from pathlib import Path

import torch

from ..normalise import Normalise
from ..text import class_embeddings, merge_synonyms


WORLD_SETS = ('things', 'stuff')


def world_classes(start, kind='things'):
    """The synthetic world's ``things`` or ``stuff`` classes with their synonyms, from the
    ``synth_world.json`` in ``start`` or one of its parents (the world's root), else from the
    generator's own ``WORLD``."""
    for folder in [Path(start), *Path(start).resolve().parents]:
        path = folder / 'synth_world.json'
        if path.is_file():
            meta = json.loads(path.read_text())
            return [[c, *meta.get('synonyms', {}).get(c, [])] for c in meta[kind]]
    from ..data.synthetic import WORLD
    return [list(WORLD.names(c)) for c in getattr(WORLD, kind)]


def _vocabulary(classes, ann_file):
    if classes is None or classes in WORLD_SETS:
        return world_classes(Path(ann_file).parent, classes or 'things')
    if isinstance(classes, str):
        from ..text import load_vocabulary
        return load_vocabulary(classes)
    return [[c] if isinstance(c, str) else list(c) for c in classes]


class CropToMultiple:
    """Centre crop of ``img`` to the largest multiple of ``patch`` on each side."""

    def __init__(self, patch):
        self.patch = patch

    def __call__(self, results):
        img = results['img']
        h, w = (s // self.patch * self.patch for s in img.shape[:2])
        y, x = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
        results['img'] = img[y:y + h, x:x + w]
        return results


@torch.no_grad()
def zero_shot_classification(head, ann_file, img_dir, classes=None, templates='imagenet80',
                             image_size=None, batch_size=64, max_images=None):
    """Accuracy and chance level of zero-shot classification; see the module docstring.

    ``classes``: ``None``/``'things'`` (the synthetic world's things, with their synonyms,
    merged by max), ``'stuff'`` (its stuff classes), a vocabulary name/path, or a list of
    names or synonym lists. Images are resized as a whole
    to ``image_size`` x ``image_size`` (default: the backbone's pretraining size), so no object
    is cropped away, or kept at their own resolution with ``'native'`` (centre-cropped to a
    multiple of the patch size); images listing none of the classes are left out.
    Returns a dict: ``accuracy`` and ``chance`` (percent), ``n_images``, ``n_classes``,
    ``templates``.
    """
    from ..data.image_text import CocoCaptionDataset, ResizeRGB
    vocab = _vocabulary(classes, ann_file)
    canon = [names[0] for names in vocab]
    if image_size == 'native':
        pipeline = [CropToMultiple(head.backbone.patch_size)]
    else:
        size = image_size or head.backbone.image_size
        pipeline = [ResizeRGB(size if isinstance(size, int) else tuple(size)[::-1])]
    data = CocoCaptionDataset(ann_file=ann_file, img_dir=img_dir, pipeline=pipeline)
    picked = []
    for i in range(len(data)):
        present = data.classes(i)
        if present is None:
            raise ValueError(f'{ann_file}: image entries have no "classes" key, so zero-shot '
                             f'accuracy cannot be scored')
        hits = [c for c in canon if c in present]
        if hits:
            picked.append((i, hits))
    if max_images:
        picked = picked[:max_images]
    if not picked:
        raise ValueError(f'{ann_file}: no image shows any of {canon}')

    was_training = head.training
    head.eval()
    try:
        device = next(head.parameters()).device
        embeds, owner = class_embeddings(head, vocab, templates, cache_dir=None)
        embeds = embeds.to(device)
        normalise = Normalise(head.backbone.mean, head.backbone.std).to(device)
        correct = 0
        chance = 0.0
        for start in range(0, len(picked), batch_size):
            chunk = picked[start:start + batch_size]
            images = torch.stack([data[i]['images'] for i, _ in chunk]).to(device)
            images = normalise(images)
            logits = head.classify(images, embeds)
            pred = merge_synonyms(logits, owner, len(vocab)).argmax(1).tolist()
            for (_, hits), p in zip(chunk, pred):
                correct += canon[p] in hits
                chance += len(hits) / len(canon)
    finally:
        head.train(was_training)
    n = len(picked)
    return dict(accuracy=100.0 * correct / n, chance=100.0 * chance / n, n_images=n,
                n_classes=len(vocab),
                templates=templates if isinstance(templates, str) else 'custom')
