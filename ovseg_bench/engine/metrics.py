"""mmseg's IoU metric, plus per-class results and the generalized zero-shot summary."""
import numpy as np
import torch
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
    """

    def __init__(self, unseen_classes=(), **kwargs):
        kwargs.setdefault('iou_metrics', ['mIoU'])
        super().__init__(**kwargs)
        self.unseen_classes = list(unseen_classes)
        self.per_class = []

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
