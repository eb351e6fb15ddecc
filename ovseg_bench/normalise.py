"""Pixel normalisation with a backbone's mean and std: the one place it is computed."""
import torch


class Normalise(torch.nn.Module):
    """``(x - mean) / std`` on ``...,3,H,W`` RGB images of the 0..255 scale, in float32;
    ``mean``/``std`` (a backbone's, 0..255 scale) are buffers that move with the module but
    are not saved in its state dict."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer('mean', torch.tensor(mean, dtype=torch.float32).view(3, 1, 1),
                             persistent=False)
        self.register_buffer('std', torch.tensor(std, dtype=torch.float32).view(3, 1, 1),
                             persistent=False)

    def forward(self, images):
        return (images.float() - self.mean) / self.std
