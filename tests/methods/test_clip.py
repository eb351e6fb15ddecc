"""CLIP pretraining head: FLIP-style patch dropout."""
import pytest
import torch

from ovseg_bench.backbones import OpenCLIPBackbone
from ovseg_bench.registry import load_plugins

load_plugins()
from ovseg_bench_methods.clip import CLIP  # noqa: E402


@pytest.fixture(scope='module')
def backbone():
    torch.manual_seed(0)
    return OpenCLIPBackbone('ovseg-tiny')          # random weights: wiring only


def test_pool_of_all_tokens_is_the_image_embedding(backbone):
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        tokens = backbone.run_blocks(backbone.embed(x)[0])
        assert torch.allclose(backbone.pool(tokens), backbone.encode_image(x), atol=1e-5)


def test_patch_dropout_encodes_a_random_subset_of_each_images_patches(backbone, monkeypatch):
    head = CLIP(backbone, patch_dropout=0.75)
    seen = []
    run_blocks = backbone.run_blocks
    monkeypatch.setattr(backbone, 'run_blocks', lambda x, *a: seen.append(x) or run_blocks(x, *a))
    x = torch.randn(1, 3, 64, 64).expand(3, -1, -1, -1)   # one image, three times
    embeds = head._encode_masked(x)
    tokens = seen[0]
    assert embeds.shape == (3, backbone.embed_dim)
    assert tokens.shape[1] == 1 + 16                  # the class token and 1/4 of 64 patches
    full = backbone.embed(x)[0]
    assert torch.equal(tokens[:, 0], full[:, 0])      # the class token is always kept
    patches = {tuple(t.tolist()) for t in full[0, 1:]}
    kept = [frozenset(tuple(t.tolist()) for t in tokens[b, 1:]) for b in range(3)]
    assert all(k <= patches and len(k) == 16 for k in kept)   # 16 distinct patches of it
    assert len(set(kept)) == 3                        # a different subset for each copy


def test_patch_dropout_only_while_training(backbone):
    head = CLIP(backbone, patch_dropout=0.5)
    batch = dict(images=torch.randn(4, 3, 64, 64), captions=['a red circle'] * 4)
    calls = []
    head._encode_masked = lambda images: calls.append(len(images)) or backbone.encode_image(images)
    head.train()
    head.forward_train(batch)
    assert calls == [4]
    # inference never drops patches: the dense output is the backbone's full forward
    head.eval()
    with torch.no_grad():
        dense = head.predict_dense(batch['images'], torch.randn(5, backbone.embed_dim))
    assert dense.shape == (4, 5, 8, 8)


def test_patch_dropout_out_of_range_fails():
    with pytest.raises(ValueError, match='patch_dropout'):
        CLIP(OpenCLIPBackbone('ovseg-tiny'), patch_dropout=1.0)
