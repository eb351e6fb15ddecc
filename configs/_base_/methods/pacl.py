# PACL as published (Mukhoti et al., CVPR 2023): the method, its image-text data, its
# optimiser; a backbone config and the pacl protocol preset (which lists the paper's four
# segmentation benchmarks) complete it (configs/pacl/pacl_vit_*.py).

# The paper's head: e_v on the patch tokens before CLIP's projection, the text side frozen
# CLIP (no e_t trained), plain softmax of cosines as patch weights.
method = dict(type='PACL', embed_input='tokens', text_embedder='identity', activation='relu',
              init='random', patch_temperature=1.0, learn_logit_scale=True,
              text_chunk=1024)   # B x B compatibility in blocks of 1024 captions

# The paper's image-text data (~30M pairs) as img2dataset tar shards ({key}.jpg + {key}.txt),
# one pattern per set: a glob, or a brace range naming every shard so that a missing one
# fails, e.g. 'data/cc12m/{00000..01242}.tar'; edit the paths to where they are. CSV/TSV
# lists work too:
#   train_data = dict(type='CsvCaptionDataset', file='data/cc3m/cc3m.tsv', pipeline=...)
train_data = dict(
    type='WebDatasetShards',
    shards=['data/cc3m/*.tar', 'data/cc12m/*.tar', 'data/yfcc15m/*.tar'],
    pipeline=[
        dict(type='RandomResizedCropRGB', size=224, scale=(0.5, 1.0), flip_prob=0.5),
        dict(type='ToTensorRGB'),
    ])

# The published recipe: AdamW, lr 5e-4, weight decay 0.2, cosine schedule, global batch 4096
# (1024 per process x 4 processes), 10 epochs of ~30M pairs = 30e6 * 10 / 4096 ~ 73k steps.
# Not published, chosen here: warm-up length, and betas/eps (CLIP's AdamW values).
train = dict(iters=73000, batch_size=1024, num_workers=8, lr=5e-4, weight_decay=0.2,
             betas=(0.9, 0.98), eps=1e-6, warmup_iters=2000, backbone_lr_mult=0.0,
             grad_clip=1.0, seed=0, log_interval=50, checkpoint_interval=5000,
             max_keep_ckpts=3)
