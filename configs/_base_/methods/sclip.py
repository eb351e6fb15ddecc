# SCLIP (Wang et al., ECCV 2024): the released form of its last block (correlative attention
# with the block's residual and MLP); form='reduced' is the variant without them.
method = dict(type='SCLIP', form='released')
