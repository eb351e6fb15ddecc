"""The process side of a training or evaluation run: the CPU process group under ``torchrun``
and the peak memory a run reports."""
import resource

import torch
import torch.distributed as dist


def init_cpu_distributed(launcher):
    """mmengine's pytorch launcher pins a CUDA device; without CUDA the process group is
    started here (gloo) so the Runner finds it ready."""
    if launcher == 'none' or torch.cuda.is_available():
        return
    if not dist.is_initialized():
        if launcher != 'pytorch':
            raise ValueError(f'launcher {launcher!r} needs CUDA here; on CPU use '
                             f"torchrun ... --launcher pytorch")
        dist.init_process_group(backend='gloo')


def peak_memory_mb():
    """CUDA peak allocation, or on CPU the process's maximum resident set (a high-water
    mark over the process's life, so give a measurement its own process)."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
