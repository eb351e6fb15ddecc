"""CLIP-ZSS (Jialei Chen et al., "CLIP Is Also a Good Teacher: A New Learning Framework for
Inductive Zero-shot Semantic Segmentation", arXiv 2310.02296; v1 titled the framework
CLIPTeacher): the head (:mod:`.head`), its Global and Pixel Learning Modules (:mod:`.glm`,
:mod:`.plm`), encoders, synthesizer and loss (:mod:`.modules`); the zero-shot training
protocol's transforms are the data package's (:mod:`ovseg_bench.data.zero_shot`). Fidelity
card: ``docs/methods/clip_zss.md``."""
from .glm import ClassTokenBank, class_token_attention, masked_info_nce
from .head import CLIPZSS, label_fractions
from .modules import (CLIPViTEncoder, MMSegEncoder, PseudoWeightSynthesizer, SigmoidLogits,
                      build_encoder, focal_dice_loss)
from .plm import (fuse_groups, fuse_masks, multiscale_regions, pseudo_regions, seeded_kmeans,
                  window_seeds)

__all__ = ['CLIPZSS', 'ClassTokenBank', 'CLIPViTEncoder', 'MMSegEncoder',
           'PseudoWeightSynthesizer', 'SigmoidLogits', 'build_encoder', 'class_token_attention',
           'focal_dice_loss', 'fuse_groups', 'fuse_masks', 'label_fractions', 'masked_info_nce',
           'multiscale_regions', 'pseudo_regions', 'seeded_kmeans', 'window_seeds']
