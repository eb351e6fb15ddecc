# ProxyCLIP (Lan et al., ECCV 2024): thresholded proxy attention with the official beta and
# gamma; `vfm` (the proxy vision model) is set per backbone config.
method = dict(type='ProxyCLIP', beta=1.2, gamma=3.0)
