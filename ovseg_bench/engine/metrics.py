"""mmseg's IoU metric, plus per-class results and the generalized zero-shot summary."""
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS


def harmonic_mean(a, b):
    """hIoU of mIoU(seen) ``a`` and mIoU(unseen) ``b``: NaN when either is undefined (NaN: no
    class of that subset in the ground truth or the predictions), 0 when both are 0."""
    if math.isnan(a) or math.isnan(b):
        return float('nan')
    return 2 * a * b / (a + b) if a + b > 0 else 0.0


# The key under which rank 0's error travels to every rank in place of the metrics.
ERROR = 'error'


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
        num_classes = len(self.dataset_meta['classes'])
        super().process(data_batch, data_samples)     # one (inter, union, pred, label) each
        # Each sample's result also carries its out-of-range labels (None when there are
        # none), so that the check sees every rank's images after mmengine's collection.
        first = len(self.results) - len(data_samples)
        for i, sample in enumerate(data_samples):
            gt = sample['gt_sem_seg']['data']
            bad = (gt != self.ignore_index) & ((gt >= num_classes) | (gt < 0))
            found = ((sample.get('seg_map_path', sample.get('img_path')), int(bad.sum()),
                      gt[bad].unique()[:5].tolist()) if bad.any() else None)
            self.results[first + i] = (*self.results[first + i], found)
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

    def check_labels(self, results):
        """``ValueError`` naming the masks with labels outside the dataset's range (mmseg's
        metric drops those pixels without a word, which moves the score)."""
        out_of_range = [r[4] for r in results if r[4] is not None]
        if not out_of_range:
            return
        path, pixels, values = out_of_range[0]
        total = sum(n for _, n, _ in out_of_range)
        raise ValueError(
            f'{len(out_of_range)} of {len(results)} ground-truth masks hold labels outside '
            f'0..{len(self.dataset_meta["classes"]) - 1} and {self.ignore_index} ({total} '
            f'pixels the metric would drop), e.g. {path} (values {values}): not masks of '
            f'this dataset\'s labels; convert them again (ovseg-bench prepare) and check them '
            f'with ovseg-bench check-data')

    def evaluate(self, size):
        """mmengine's evaluation (results collected from every rank, computed on rank 0 and
        broadcast), with an error found on rank 0 raised on every rank: raised there alone,
        it would leave the other ranks waiting for the broadcast."""
        metrics = super().evaluate(size)
        if ERROR in metrics:
            raise ValueError(metrics[ERROR])
        return metrics

    def compute_metrics(self, results):
        try:
            return self._compute_metrics(results)
        except ValueError as err:
            return {ERROR: str(err)}

    def _compute_metrics(self, results):
        self.check_labels(results)
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
