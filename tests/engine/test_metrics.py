"""The IoU metric refuses masks with labels outside the dataset's range (mmseg's metric drops
those pixels silently, which moves the score)."""
import pytest
import torch

from ovseg_bench.engine.metrics import OVIoUMetric


def sample(gt, path):
    gt = torch.as_tensor(gt)
    return dict(gt_sem_seg=dict(data=gt[None]),
                pred_sem_seg=dict(data=torch.zeros_like(gt)[None]),
                seg_map_path=path, img_path=path.replace('.png', '.jpg'))


def test_labels_outside_the_range_fail_naming_the_masks():
    metric = OVIoUMetric()
    metric.dataset_meta = dict(classes=('a', 'b', 'c'))
    metric.process({}, [sample([[0, 1], [2, 255]], 'ok.png'),
                        sample([[0, 7], [7, 255]], 'masks/bad.png')])
    with pytest.raises(ValueError, match=r'1 of 2 ground-truth masks hold labels outside 0..2 '
                                         r'and 255 \(2 pixels .*\), e.g. masks/bad.png '
                                         r'\(values \[7\]\)'):
        metric.evaluate(2)      # computed on rank 0, raised on every rank
    clean = OVIoUMetric()
    clean.dataset_meta = dict(classes=('a', 'b', 'c'))
    clean.process({}, [sample([[0, 1], [2, 255]], 'ok.png')])
    assert clean.compute_metrics(clean.results)['aAcc'] == pytest.approx(100 / 3)
