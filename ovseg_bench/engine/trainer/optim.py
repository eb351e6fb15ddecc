"""The optimiser side of training: which parameters train (``frozen``), their AdamW groups
(backbone and ``custom_keys`` multipliers, no decay on 1-d tensors), the optimiser wrapper
constructor and the warm-up + cosine schedule."""
import copy
import math

from mmengine.model import is_model_wrapper
from mmengine.optim.scheduler.lr_scheduler import LRSchedulerMixin
from mmengine.optim.scheduler.param_scheduler import INF, _ParamScheduler
from mmengine.registry import (OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS, OPTIMIZERS,
                               PARAM_SCHEDULERS)


def _matching(names, patterns, what):
    """``{pattern: [names containing it]}``; ``ValueError`` for a pattern matching none (a
    typo would otherwise silently train what it meant to rule)."""
    found = {p: [n for n in names if p in n] for p in patterns}
    empty = [p for p, hit in found.items() if not hit]
    if empty:
        raise ValueError(f'train.{what}: {empty} match no parameter name of the head (names '
                         f'look like {names[0]!r}, ..., {names[-1]!r}); give a part of a name')
    return found


def freeze(head, patterns):
    """``requires_grad_(False)`` on every parameter of ``head`` whose name contains one of
    ``patterns`` (``train.frozen``); returns the frozen names."""
    named = dict(head.named_parameters())
    hits = _matching(list(named), tuple(patterns), 'frozen')
    names = sorted({n for hit in hits.values() for n in hit})
    for n in names:
        named[n].requires_grad_(False)
    return names


def param_groups(head, lr, weight_decay, backbone_lr_mult=1.0, custom_keys=None):
    """AdamW parameter groups of ``head``: only parameters that require grad; backbone ones
    (``head.backbone``) at ``lr * backbone_lr_mult``; a parameter whose name contains a key
    of ``custom_keys`` (mmengine's ``paramwise_cfg`` rule: the longest matching key wins) at
    ``lr * lr_mult`` and ``weight_decay * decay_mult`` of that key instead; 1-d tensors
    without weight decay. Each group carries a ``name`` (head/backbone or the custom key,
    then decay/no_decay)."""
    custom_keys = dict(custom_keys or {})
    named = [(n, p) for n, p in head.named_parameters()]
    _matching([n for n, _ in named], custom_keys, 'custom_keys')
    for key, rule in custom_keys.items():
        unknown = set(rule) - {'lr_mult', 'decay_mult'}
        if unknown:
            raise ValueError(f'train.custom_keys[{key!r}]: unknown {sorted(unknown)}; valid: '
                             f'lr_mult, decay_mult')
    keys = sorted(custom_keys, key=lambda k: (-len(k), k))
    groups = {}
    for name, p in named:
        if not p.requires_grad:
            continue
        decay = 'decay' if p.ndim >= 2 else 'no_decay'
        key = next((k for k in keys if k in name), None)
        if key is not None:
            part, lr_mult = key, custom_keys[key].get('lr_mult', 1.0)
            wd = weight_decay * custom_keys[key].get('decay_mult', 1.0)
        elif name.startswith('backbone.'):
            part, lr_mult, wd = 'backbone', backbone_lr_mult, weight_decay
        else:
            part, lr_mult, wd = 'head', 1.0, weight_decay
        if (part, decay) not in groups:
            groups[part, decay] = dict(name=f"{part.rstrip('.')}.{decay}", params=[],
                                       lr=lr * lr_mult,
                                       weight_decay=wd if decay == 'decay' else 0.0)
        groups[part, decay]['params'].append(p)
    order = [(part, d) for part in ('head', 'backbone', *sorted(custom_keys))
             for d in ('decay', 'no_decay')]
    return [groups[k] for k in order if k in groups]


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class OVSegOptimConstructor:
    """Builds the optimiser over :func:`param_groups` (``paramwise_cfg`` holds
    ``backbone_lr_mult`` and ``custom_keys``), then the optimiser wrapper."""

    def __init__(self, optim_wrapper_cfg, paramwise_cfg=None):
        self.optim_wrapper_cfg = copy.deepcopy(dict(optim_wrapper_cfg))
        self.paramwise_cfg = dict(paramwise_cfg or {})

    def __call__(self, model):
        model = model.module if is_model_wrapper(model) else model
        wrapper_cfg = copy.deepcopy(self.optim_wrapper_cfg)
        optim_cfg = wrapper_cfg.pop('optimizer')
        groups = param_groups(model.head, optim_cfg['lr'], optim_cfg.get('weight_decay', 0.0),
                              self.paramwise_cfg.get('backbone_lr_mult', 1.0),
                              self.paramwise_cfg.get('custom_keys'))
        if not groups:
            raise ValueError(f'{type(model.head).__name__} has no parameter that requires grad: '
                             f'nothing to train')
        optimizer = OPTIMIZERS.build(dict(optim_cfg, params=groups))
        wrapper_cfg.setdefault('type', 'OptimWrapper')
        return OPTIM_WRAPPERS.build(wrapper_cfg, default_args=dict(optimizer=optimizer))


class WarmupCosineParamScheduler(_ParamScheduler):
    """Closed-form warm-up + cosine: at step t (0-based) the value is ``base * f(t)`` with
    ``f(t) = (t + 1) / warmup`` for ``t < warmup`` (reaching the base value exactly at the
    last warm-up step) and ``f(t) = (1 + cos(pi * (t - warmup) / (total - warmup))) / 2``
    after (cosine from the base value to ~0 at the last step)."""

    def __init__(self, optimizer, param_name, warmup_iters, total_iters, begin=0, end=INF,
                 last_step=-1, by_epoch=False, verbose=False):
        self.warmup_iters, self.total_iters = int(warmup_iters), int(total_iters)
        super().__init__(optimizer, param_name, begin=begin, end=end, last_step=last_step,
                         by_epoch=by_epoch, verbose=verbose)

    def factor(self, t):
        if t < self.warmup_iters:
            return (t + 1) / self.warmup_iters
        span = max(1, self.total_iters - self.warmup_iters)
        return 0.5 * (1 + math.cos(math.pi * min(t - self.warmup_iters, span) / span))

    def _get_value(self):
        f = self.factor(self.last_step)
        return [base * f for base in self.base_values]


@PARAM_SCHEDULERS.register_module()
class WarmupCosineLR(LRSchedulerMixin, WarmupCosineParamScheduler):
    """Learning rate: linear warm-up then cosine to 0 (:class:`WarmupCosineParamScheduler`)."""
