# Train ids 0..13; 255 (unlabelled seams between stuff regions) is ignored.
dataset = dict(
    name='synth_coco',
    description='Synthetic world, COCO-Stuff 164k layout: 8 things + 6 stuff',
    vocabulary='synth_coco',
    has_background=False,
    root='data/synth',
    subdir='coco_stuff164k',
    prepare='ovseg-bench make-synthetic --out data/synth',
    eval=dict(type='SynthCOCOStuffDataset',
              data_prefix=dict(img_path='images/val2017', seg_map_path='annotations/val2017')),
    train=dict(type='SynthCOCOStuffDataset',
               data_prefix=dict(img_path='images/train2017',
                                seg_map_path='annotations/train2017')),
)
