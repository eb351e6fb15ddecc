"""The batch of image-caption items (registered in mmengine's ``FUNCTIONS`` for the dataloader
config)."""
import numpy as np
import torch
from mmengine.registry import FUNCTIONS


@FUNCTIONS.register_module()
def image_text_collate(items):
    """A batch dict from item dicts: same-shape tensors stacked, numbers as a tensor,
    anything else (strings, lists, tensors of different shapes) as a list; the
    ``skipped_images`` lists are concatenated."""
    batch = {}
    for key in items[0]:
        values = [it.get(key) for it in items]
        if key == 'skipped_images':
            batch[key] = [p for v in values for p in (v or ())]
        elif all(torch.is_tensor(v) for v in values):
            same = all(v.shape == values[0].shape for v in values)
            batch[key] = torch.stack(values) if same else values
        elif all(isinstance(v, np.ndarray) for v in values) and \
                all(v.shape == values[0].shape for v in values):
            batch[key] = torch.from_numpy(np.stack(values))
        elif all(isinstance(v, (bool, int, float)) for v in values):
            batch[key] = torch.tensor(values)
        else:
            batch[key] = list(values)
    return batch
