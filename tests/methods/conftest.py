"""Fixtures of the method tests: random CLIPs for the training-free heads' equivalence tests."""
import pytest
import torch


@pytest.fixture(scope='session')
def vit_b16():
    """open_clip ViT-B/16 (OpenAI layout: QuickGELU, 224 px) with random weights, built once."""
    from ovseg_bench.backbones import OpenCLIPBackbone
    torch.manual_seed(0)
    return OpenCLIPBackbone('ViT-B-16-quickgelu').eval()


@pytest.fixture(scope='session')
def tiny_dino_pos():
    """The tiny random CLIP (same weights as ``tiny_backbone``) resizing positions the way the
    official SCLIP/ClearCLIP/NACLIP/ProxyCLIP code does (``pos_interpolation='dino'``)."""
    from ovseg_bench.backbones import OpenCLIPBackbone
    torch.manual_seed(0)
    return OpenCLIPBackbone('ovseg-tiny', pos_interpolation='dino').eval()
