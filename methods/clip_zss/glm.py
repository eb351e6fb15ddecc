"""CLIP-ZSS's Global Learning Module: the frozen CLIP's class token queries the trainable
encoder's dense features; the pooled feature is contrasted with the class tokens of the batch
and of a memory bank (InfoNCE), the crops of the same image never being negatives."""
import math

import torch
import torch.nn.functional as F
from torch import nn


def class_token_attention(cls, feats):
    """The paper's ``W = Softmax(S R / sqrt(C))``: ``cls`` B,C (the teacher's class token S),
    ``feats`` B,N,C (the encoder's dense features R, N positions). Returns B,N weights."""
    return (torch.einsum('bc,bnc->bn', cls, feats) / math.sqrt(cls.shape[-1])).softmax(1)




class ClassTokenBank(nn.Module):
    """FIFO memory bank of L2-normalised teacher class tokens and their image ids.

    Its buffers are persistent (they travel in the checkpoint, so a resumed run continues
    with the same negatives). Every rank enqueues the class tokens of the whole global batch,
    so the banks of all ranks stay equal.
    """

    def __init__(self, size, dim):
        super().__init__()
        self.register_buffer('keys', torch.zeros(size, dim))
        self.register_buffer('ids', torch.full((size,), -1, dtype=torch.long))
        self.register_buffer('ptr', torch.zeros((), dtype=torch.long))
        self.register_buffer('filled', torch.zeros((), dtype=torch.long))

    @property
    def size(self):
        return self.keys.shape[0]

    def contents(self):
        n = int(self.filled)
        return self.keys[:n], self.ids[:n]

    @torch.no_grad()
    def push(self, keys, ids):
        if self.size == 0:
            return
        keys, ids = keys[-self.size:], ids[-self.size:]
        idx = (int(self.ptr) + torch.arange(len(keys), device=keys.device)) % self.size
        self.keys[idx] = keys.to(self.keys.dtype)
        self.ids[idx] = ids.to(self.ids.device)
        self.ptr.fill_((int(self.ptr) + len(keys)) % self.size)
        self.filled.fill_(min(self.size, int(self.filled) + len(keys)))


def masked_info_nce(query, keys, key_ids, query_ids, positive, temperature):
    """InfoNCE of ``query`` B,D against ``keys`` K,D (row ``positive[i]`` is query i's
    positive); keys of the query's own image (``key_ids == query_ids[i]``) other than the
    positive are masked out, never negatives. Returns ``(loss, logits)``."""
    logits = query @ keys.t() / temperature
    same = key_ids[None, :] == query_ids[:, None]
    same[torch.arange(len(query), device=query.device), positive] = False
    logits = logits.masked_fill(same, float('-inf'))
    return F.cross_entropy(logits, positive), logits
