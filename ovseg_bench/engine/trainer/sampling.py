"""Data order: every training sample -- which image, which caption, which crop -- is a function
of (seed, draw number) alone, so a run is reproducible whatever the number of workers and a
resumed run continues exactly."""
import itertools
import random

import numpy as np
import torch
from mmengine.dataset.sampler import Sampler
from mmengine.dist import get_dist_info, sync_random_seed
from mmengine.registry import DATA_SAMPLERS
from mmseg.registry import DATASETS


@DATA_SAMPLERS.register_module()
class DrawSampler(Sampler):
    """Endless sampler yielding ``(index, draw)``: ``draw`` numbers the samples of the whole
    run over all ranks (rank r takes draws r, r + world, ...); epoch ``e`` of the data is a
    permutation seeded by (seed, e). With :class:`SeededDraws` every sample -- which image,
    which caption, which crop -- is a function of (seed, draw) alone, whatever the number of
    workers, and resuming at iteration i is ``set_start(i * batch_size)`` with nothing to
    replay."""

    def __init__(self, dataset, seed=None, shuffle=True):
        self.rank, self.world_size = get_dist_info()
        self.seed = sync_random_seed() if seed is None else int(seed)
        self.size = len(dataset)
        self.shuffle = shuffle
        self.start = 0
        self._perm = (None, None)

    def set_start(self, start):
        """Begin at this rank's sample number ``start`` (``iteration * batch_size``)."""
        self.start = int(start)

    def _permutation(self, epoch):
        if self._perm[0] != epoch:
            if self.shuffle:
                s = int(np.random.SeedSequence([self.seed, epoch]).generate_state(1)[0])
                perm = torch.randperm(self.size, generator=torch.Generator().manual_seed(s))
            else:
                perm = torch.arange(self.size)
            self._perm = (epoch, perm.tolist())
        return self._perm[1]

    def __iter__(self):
        for local in itertools.count(self.start):
            draw = local * self.world_size + self.rank
            epoch, pos = divmod(draw, self.size)
            yield self._permutation(epoch)[pos], draw

    def __len__(self):
        return self.size


class _ForkedRNG:
    """Seeds python's, numpy's and torch's global generators for one sample and restores
    them after, so the (mmcv/mmseg/own) transforms' randomness is a function of the seed."""

    def __init__(self, seed):
        self.seed = seed

    def __enter__(self):
        self.states = (random.getstate(), np.random.get_state(), torch.get_rng_state())
        random.seed(self.seed)
        np.random.seed(self.seed)
        # The CPU generator only (what transforms draw from): torch.manual_seed also queues
        # a lazy seeding of every accelerator, with a captured stack trace each time, which
        # was half of a data worker's time.
        torch.default_generator.manual_seed(self.seed)

    def __exit__(self, *exc):
        random.setstate(self.states[0])
        np.random.set_state(self.states[1])
        torch.set_rng_state(self.states[2])


@DATASETS.register_module()
class SeededDraws(torch.utils.data.Dataset):
    """Wraps any dataset: item ``(index, draw)`` is ``dataset[index]`` with the random
    generators seeded by (seed, draw) (see :class:`DrawSampler`)."""

    def __init__(self, dataset, seed=0):
        self.dataset = DATASETS.build(dataset) if isinstance(dataset, dict) else dataset
        if hasattr(self.dataset, 'full_init'):
            self.dataset.full_init()
        self.seed = int(seed)

    @property
    def metainfo(self):
        return getattr(self.dataset, 'metainfo', {})

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, item):
        index, draw = item if isinstance(item, tuple) else (item, item)
        s = int(np.random.SeedSequence([self.seed, int(draw)]).generate_state(1)[0])
        with _ForkedRNG(s):
            return self.dataset[index]
