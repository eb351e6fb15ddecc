# SegCLIP (Luo et al., ICML 2023): what every SegCLIP config shares; the split layer, the
# dense scores and the reconstruction target are set per backbone and data.
method = dict(
    type='SegCLIP',
    num_centers=8,            # the paper's 8 learnable centers
    cross_layers=2,           # cross-attention blocks refining the centers
    tau=0.9,                  # Gumbel-softmax temperature (hard, straight-through)
    eval_pool='hard',         # centers pooled by argmax at inference (authors' code)
    pool='max',               # image embedding = max over the center tokens
    mask_ratio=0.75,          # MAE branch: 75 % of the patches dropped ...
    decoder_layers=3,         # ... 3 decoder blocks
    loss_weights=dict(contrastive=1.0, reconstruction=1.0, superpixel=1.0))
