# ZS3Net's 10-unseen PASCAL Context split (Bucher et al., NeurIPS 2019: cow, motorbike,
# aeroplane, sofa, cat, tv, train, bottle, chair, potted plant), as in CaGNet and SIGN; the
# alternative to splits.py's context59 (the ZegCLIP line's). A Context config that wants it
# names this file as its split base instead of splits.py.
zero_shot_splits = dict(
    context59=['aeroplane', 'bottle', 'cat', 'chair', 'cow', 'motorbike', 'pottedplant', 'sofa',
               'train', 'tvmonitor'],
)
