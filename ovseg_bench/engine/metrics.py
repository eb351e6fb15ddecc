"""mmseg's IoU metric, plus per-class results and the generalized zero-shot summary."""
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS


def harmonic_mean(a, b):
    return 2 * a * b / (a + b) if a + b > 0 else 0.0


@METRICS.register_module()
class OVIoUMetric(IoUMetric):
    """mmseg IoUMetric that also keeps per-class IoU/Acc and, given unseen classes, hIoU.

    ``compute_metrics`` returns mIoU, mAcc, aAcc (percent, mmseg's definitions: classes absent
    from both prediction and ground truth are left out of the means) and, when
    ``unseen_classes`` is set, mIoU_seen, mIoU_unseen and their harmonic mean hIoU over the
    classes of each subset. ``self.per_class`` holds one dict per class afterwards.
    With ``save_dir``, the predictions of the first ``save_first`` images (in dataset order)
    are written there as label PNGs named like the image, for qualitative figures.
    """

    default_prefix = ''  # metric names stay plain: mIoU, not iou/mIoU

    def __init__(self, unseen_classes=(), save_dir=None, save_first=0, **kwargs):
        kwargs.setdefault('iou_metrics', ['mIoU'])
        super().__init__(**kwargs)
        self.unseen_classes = list(unseen_classes)
        self.save_dir, self.save_first, self.saved = save_dir, save_first, 0
        self.per_class = []

    def process(self, data_batch, data_samples):
        super().process(data_batch, data_samples)
        for sample in data_samples:
            if self.save_dir is None or self.saved >= self.save_first:
                return
            pred = sample['pred_sem_seg']['data'].squeeze().cpu().numpy()
            # uint8 as the datasets' masks; 16-bit where classes run past 254 (ADE-847, PC-459)
            wide = len(self.dataset_meta['classes']) > 254
            pred = pred.astype(np.uint16 if wide else np.uint8)
            Path(self.save_dir).mkdir(parents=True, exist_ok=True)
            Image.fromarray(pred).save(Path(self.save_dir) / f'{Path(sample["img_path"]).stem}.png')
            self.saved += 1

    def compute_metrics(self, results):
        inter, union, pred_area, label_area = (
            torch.stack([torch.as_tensor(r[i]) for r in results]).sum(0).double()
            for i in range(4))
        with np.errstate(invalid='ignore', divide='ignore'):
            iou = (inter / union).numpy()
            acc = (inter / label_area).numpy()
        classes = self.dataset_meta['classes']
        self.per_class = [
            dict(index=i, name=name, IoU=100 * iou[i], Acc=100 * acc[i],
                 gt_pixels=int(label_area[i]), pred_pixels=int(pred_area[i]),
                 split='unseen' if name in self.unseen_classes else 'seen')
            for i, name in enumerate(classes)]
        out = dict(aAcc=100 * float(inter.sum() / label_area.sum()),
                   mIoU=100 * float(np.nanmean(iou)), mAcc=100 * float(np.nanmean(acc)))
        if self.unseen_classes:
            unknown = set(self.unseen_classes) - set(classes)
            if unknown:
                raise ValueError(f'unseen classes not in the dataset: {sorted(unknown)}')
            unseen = np.array([c['split'] == 'unseen' for c in self.per_class])
            out['mIoU_seen'] = 100 * float(np.nanmean(iou[~unseen]))
            out['mIoU_unseen'] = 100 * float(np.nanmean(iou[unseen]))
            out['hIoU'] = harmonic_mean(out['mIoU_seen'], out['mIoU_unseen'])
        return out
