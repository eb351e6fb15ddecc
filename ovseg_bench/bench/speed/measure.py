"""Timing, peak memory and the other processes' load around a call.

Each measurement runs ``warmup`` untimed calls, one untimed call under the FLOP counter
(:mod:`.flops`), then ``reps`` timed calls (CUDA synchronised after each); the median call
time is reported. Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` over the timed
calls (weights, optimiser state and activations: everything allocated); on CPU the rise of
the process's resident set over the timed calls (Linux: peak ``VmHWM`` after resetting it
through ``/proc/self/clear_refs`` and returning freed heap pages with ``malloc_trim``, minus
the resident set before), i.e. activations and temporaries without the weights; None where
the kernel does not allow the reset. ``other_load``: CPU cores other processes kept busy
during the timed calls (:class:`OtherLoad`), to tell a slow path from a busy machine.
"""
import collections
import ctypes
import gc
import os
import resource
import statistics
import time

import torch

from .flops import count_flops


def synchronize(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _resident_kb(field):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise OSError(f'{field} not in /proc/self/status')


def _release_freed_heap():
    """Give freed heap pages back to the OS (glibc), so that reusing them during the next
    measurement shows in its resident set again."""
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakMemory:
    """Peak memory of the code in the ``with`` block, in MB (``peak_mb``; None if unknown)."""

    def __init__(self, device):
        self.device = device
        self.peak_mb = None

    def __enter__(self):
        gc.collect()
        if self.device.type == 'cuda':
            synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return self
        _release_freed_heap()
        try:
            with open('/proc/self/clear_refs', 'w') as f:
                f.write('5')            # resets the peak resident set (VmHWM) to the current
            self._base_kb = _resident_kb('VmRSS')
        except OSError:
            self._base_kb = None
        return self

    def __exit__(self, *exc):
        if self.device.type == 'cuda':
            synchronize(self.device)
            self.peak_mb = torch.cuda.max_memory_allocated(self.device) / 2**20
        elif self._base_kb is not None:
            self.peak_mb = max(0, _resident_kb('VmHWM') - self._base_kb) / 1024
        return False


class OtherLoad:
    """CPU cores that other processes kept busy during the ``with`` block (``cores``; None
    where ``/proc/stat`` is missing): machine-wide busy time minus the CPU time of this
    process and of its finished children (DataLoader workers), over the wall time. A figure
    measured while it was high says more about the neighbours than about this code."""

    @staticmethod
    def _own_seconds():
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.process_time() + children.ru_utime + children.ru_stime

    @staticmethod
    def _busy_seconds():
        with open('/proc/stat') as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)    # idle + iowait
        return (sum(fields[:8]) - idle) / os.sysconf('SC_CLK_TCK')

    def __enter__(self):
        self.cores = None
        try:
            self._start = (self._busy_seconds(), self._own_seconds(), time.perf_counter())
        except (OSError, ValueError):
            self._start = None
        return self

    def __exit__(self, *exc):
        if self._start is not None:
            busy0, own0, wall0 = self._start
            wall = time.perf_counter() - wall0
            others = self._busy_seconds() - busy0 - (self._own_seconds() - own0)
            self.cores = max(0.0, others / wall) if wall > 0 else None
        return False


Measurement = collections.namedtuple('Measurement', 'flops seconds peak_mb other_load')


def measure(fn, device, warmup, reps, count=None):
    """A :class:`Measurement`: ``warmup`` untimed calls, one call of ``count`` (default
    ``fn``) under the FLOP counter, then ``reps`` timed calls (median seconds per call, peak
    memory and the other processes' load over them).

    The median, not the mean: on a shared machine another process taking a core for a
    moment stalls every parallel region of torch's two threads, and one such call would
    otherwise decide the figure.
    """
    for _ in range(warmup):
        fn()
    flops = count_flops(count or fn)
    synchronize(device)
    times = []
    with PeakMemory(device) as memory, OtherLoad() as load:
        for _ in range(reps):
            start = time.perf_counter()
            fn()
            synchronize(device)
            times.append(time.perf_counter() - start)
    return Measurement(flops, statistics.median(times), memory.peak_mb, load.cores)

