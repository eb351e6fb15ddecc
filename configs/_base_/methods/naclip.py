# NACLIP (Hajimiri et al., WACV 2025), the official defaults: reduced last block, k-k
# attention plus a Gaussian of std 5 patches.
method = dict(type='NACLIP', gaussian_std=5.0, arch='reduced')
