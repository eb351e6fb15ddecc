# The shared training recipe on the synthetic captions: what a plugin that brings no config of
# its own is trained with in the default matrix (configs/bench/default.py, `plugin_base`), and
# a starting point for a new method's own `*_tiny_synth.py`.
train_data = dict(
    type='CocoCaptionDataset', data_root='data/synth/coco',
    ann_file='annotations/captions_train2017.json', img_dir='train2017',
    pipeline=[
        dict(type='RandomResizedCropRGB', size=64, scale=(0.5, 1.0), flip_prob=0.5),
        dict(type='ToTensorRGB'),
    ])
train = dict(iters=300, batch_size=32, num_workers=1, lr=5e-4, weight_decay=0.05,
             warmup_iters=30, backbone_lr_mult=0.1, grad_clip=1.0, seed=0, log_interval=25,
             checkpoint_interval=300, max_keep_ckpts=1, cpu_threads=1)
