"""The zero-shot training protocol's transforms, as configs name them (by type, from the data
package alone: no method module needs to be imported for them to register)."""
import numpy as np
import pytest

from ovseg_bench.data.image_text import Pipeline
from ovseg_bench.data.zero_shot import IGNORE, dataset_classes, unseen_lut


def test_config_type_names_build_the_data_package_transforms():
    pipeline = Pipeline([dict(type='IgnoreUnseenClasses', classes=['a', 'b', 'c'], unseen=['b']),
                        dict(type='PackImageInfo')])
    gt = np.array([[0, 1], [2, IGNORE]], np.uint8)
    out = pipeline(dict(gt_seg_map=gt, img=np.zeros((2, 2, 3), np.uint8), img_path='x/1.jpg'))
    assert out['gt_seg_map'].tolist() == [[0, IGNORE], [2, IGNORE]]
    assert out['valid_hw'].tolist() == [2, 2] and out['view_keys'] == ['image_id', 'valid_hw']
    assert type(pipeline.transforms[0]).__module__ == 'ovseg_bench.data.zero_shot'


def test_unseen_lut_maps_only_the_unseen_classes():
    lut = unseen_lut(('a', 'b', 'c'), ['c'], ignore_index=200)
    assert lut[:4].tolist() == [0, 1, 200, 3] and lut[255] == 255
    with pytest.raises(ValueError, match=r"not in the dataset: \['d'\]"):
        unseen_lut(('a', 'b', 'c'), ['d'])


def test_dataset_classes_are_the_dataset_class_labels_in_order():
    classes = dataset_classes('synth_coco')
    assert classes[:2] == ('circle', 'square') and len(classes) == 14
