"""Golden outputs: every registered built-in method's dense logits on the seeded random tiny CLIP
and a fixed input, compared with the values stored in ``golden/dense_logits.pt`` (as
open_clip's ``tests/test_inference.py`` does), so a refactor that moves a number fails here.

A deliberate change of a method's numbers regenerates the file, reviewed in the diff:

    OVSEG_REGENERATE_GOLDEN=1 python -m pytest tests/methods/test_golden.py
"""
import os
from pathlib import Path

import pytest
import torch

from ovseg_bench import contract
from ovseg_bench.registry import BUILTIN_METHODS, METHODS, load_plugins, method_info, names

GOLDEN = Path(__file__).parent / 'golden' / 'dense_logits.pt'
REGENERATE = bool(os.environ.get('OVSEG_REGENERATE_GOLDEN'))
load_plugins()
BUILTIN = [m for m in names(METHODS)
           if METHODS.get(m).__module__.startswith(BUILTIN_METHODS + '.')]


def dense_logits(method):
    """1,4,h,w logits of ``method``'s default config on random tiny-CLIP weights (seed 0), a
    fixed 64 x 96 image (seed 3) and four fixed class embeddings (seed 1)."""
    cfg = contract.contract_config(method_info(method).config)
    head = contract.build_head(cfg, seed=0).eval()
    image = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(3))
    embeds = contract.class_embeds(4, head.backbone.embed_dim, seed=1)
    with torch.no_grad():
        logits = head.predict_dense(image, embeds)
    return logits.float()


@pytest.fixture(scope='module')
def golden():
    if REGENERATE:
        GOLDEN.parent.mkdir(exist_ok=True)
        torch.save({m: dense_logits(m) for m in BUILTIN}, GOLDEN)
    return torch.load(GOLDEN, weights_only=True)


@pytest.mark.parametrize('method', BUILTIN)
def test_dense_logits_match_the_golden_values(method, golden):
    assert method in golden, (f'no golden values for {method}: regenerate '
                              f'(OVSEG_REGENERATE_GOLDEN=1, see this module)')
    torch.testing.assert_close(dense_logits(method), golden[method], atol=1e-5, rtol=1e-4)
