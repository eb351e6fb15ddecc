"""open_clip adapter: any open_clip ViT, weights from a local file only."""
import logging
import zipfile
from pathlib import Path

import open_clip
import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from open_clip.model import convert_to_custom_text_state_dict, get_model_preprocess_cfg
from open_clip.transformer import ResidualAttentionBlock, VisionTransformer

from ..checkpoint import CheckpointError, load as load_checkpoint
from ..config import did_you_mean
from ..registry import BACKBONES
from ._vit import ViTDenseMixin
from .base import RANDOM_WEIGHTS, Backbone, MissingCapability, drop_log_records

logger = logging.getLogger(__name__)

# Keys that OpenAI's TorchScript checkpoints carry besides the weights.
_OPENAI_EXTRA_KEYS = ('input_resolution', 'context_length', 'vocab_size')


def _is_torchscript(path):
    """True for a TorchScript archive (OpenAI's released ``.pt`` files are these)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any(n.endswith('/constants.pkl') or '/code/' in n for n in zf.namelist())


def read_state_dict(path):
    """The raw state dict in a checkpoint file: TorchScript, safetensors, a plain state dict,
    or a dict wrapping one under ``state_dict``/``model``/``module`` (mmengine, trainers)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'CLIP checkpoint not found: {path} (weights are never '
                                f'downloaded: give the path of a local checkpoint file)')
    what = 'CLIP checkpoint (backbone.pretrained)'
    # TorchScript (OpenAI's release): its loader rebuilds tensors and TorchScript code, which
    # runs in TorchScript's interpreter, never Python's unpickler on arbitrary globals.
    if _is_torchscript(path):
        try:
            return dict(torch.jit.load(str(path), map_location='cpu').state_dict())
        except RuntimeError as err:
            raise CheckpointError(f'cannot read {what} {path}: a damaged TorchScript archive '
                                  f'({str(err).strip().splitlines()[0]})') from None
    if path.suffix == '.safetensors':
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        try:
            return load_file(str(path), device='cpu')
        except SafetensorError as err:
            raise CheckpointError(f'cannot read {what} {path}: a damaged safetensors file '
                                  f'({err})') from None
    ckpt = load_checkpoint(path, what)
    while isinstance(ckpt, dict):
        inner = next((ckpt[k] for k in ('state_dict', 'model', 'module')
                      if isinstance(ckpt.get(k), dict)), None)
        if inner is None:
            break
        ckpt = inner
    if not isinstance(ckpt, dict):
        raise ValueError(f'{path} holds a {type(ckpt).__name__}, not a state dict')
    return dict(ckpt)


def strip_prefix(sd, anchor):
    """Keep the keys under the one prefix that ends in ``anchor`` (e.g. ``module.``,
    ``backbone.model.``) and strip it; unchanged if no key ends in ``anchor``."""
    prefixes = {k[:-len(anchor)] for k in sd
                if k.endswith(anchor) and (k == anchor or k[-len(anchor) - 1] == '.')}
    if not prefixes or prefixes == {''}:
        return sd
    if len(prefixes) > 1:
        raise ValueError(f'checkpoint holds several CLIP models (prefixes '
                         f'{sorted(prefixes)}); save the one to load on its own')
    prefix = prefixes.pop()
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


def describe_image_tower(sd):
    """'width W, patch P, N blocks' of the ViT image tower in an open_clip state dict, or
    None when it holds none (what a wrong-architecture error compares)."""
    conv = sd.get('visual.conv1.weight')
    if conv is None or conv.ndim != 4:
        return None
    prefix = 'visual.transformer.resblocks.'
    blocks = {k[len(prefix):].split('.', 1)[0] for k in sd if k.startswith(prefix)}
    return f'width {conv.shape[0]}, patch {conv.shape[-1]}, {len(blocks)} blocks'


def check_compatible(model_sd, sd, path, n=10, model_name='the model'):
    """ValueError naming missing/unexpected keys and shape mismatches (first ``n`` of each);
    when the image towers differ, both are described, since the usual cause is a checkpoint
    of another architecture than ``model_name``."""
    missing = [k for k in model_sd if k not in sd]
    unexpected = [k for k in sd if k not in model_sd]
    shapes = [f'{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(v.shape)}'
              for k, v in model_sd.items() if k in sd and tuple(sd[k].shape) != tuple(v.shape)]
    if not (missing or unexpected or shapes):
        return
    parts = []
    for title, items in (('missing keys', missing), ('unexpected keys', unexpected),
                         ('shape mismatches', shapes)):
        if items:
            more = f' ... (+{len(items) - n} more)' if len(items) > n else ''
            parts.append(f'{len(items)} {title}: {", ".join(items[:n])}{more}')
    ours, theirs = describe_image_tower(model_sd), describe_image_tower(sd)
    towers = ''
    if ours and ours != theirs:
        towers = (f' (image tower of the checkpoint: {theirs or "none found"}; of {model_name}: '
                  f'{ours}; is `model` the checkpoint\'s architecture?)')
    raise ValueError(f'checkpoint {path} does not fit {model_name}{towers}: ' + '; '.join(parts))


def _resolve_model_name(model):
    """An open_clip model name, registering a JSON config file first if ``model`` is one."""
    model = str(model)
    if model.endswith('.json'):
        path = Path(model)
        if not path.is_file():
            raise FileNotFoundError(f'open_clip model config not found: {path}')
        open_clip.add_model_config(path)
        return path.stem
    model = model.replace('/', '-')   # OpenAI spelling, e.g. ViT-B/16
    if model not in open_clip.list_models():
        hint = did_you_mean(model, open_clip.list_models(), n=5)
        raise ValueError(f'unknown open_clip model {model!r}.{hint} (or give the path of a '
                         f'JSON model config)')
    return model


@BACKBONES.register_module()
class OpenCLIPBackbone(ViTDenseMixin, Backbone):
    """open_clip ViT CLIP (any open_clip model name or JSON config; local weights only).

    Args:
        model: an open_clip model name (``ViT-B-16``, ``ovseg-tiny``, ...) or the path of a
            JSON model config in open_clip's format.
        pretrained: a local checkpoint: an open_clip state dict, an OpenAI ``.pt`` (TorchScript
            or state dict), or a dict holding one under ``state_dict`` (mmengine / trainer
            checkpoints; prefixes such as ``module.`` or ``backbone.model.`` are stripped).
            ``None`` means random weights, on purpose (a warning says so). An OpenAI checkpoint
            (recognised by its ``input_resolution``/``context_length``/``vocab_size`` entries)
            builds the model with QuickGELU, as OpenAI trained it; for OpenAI weights re-saved
            without those entries, name a ``-quickgelu`` model.
        frozen: no parameter requires grad and the module stays in eval mode.
        pos_interpolation: how positions are resized off the pretraining grid: ``size``
            (bicubic to the target size) or ``dino`` (the scale-factor resize of DINO's code
            that SCLIP, ClearCLIP, NACLIP and ProxyCLIP use; their ViT-B/16 configs set it).
    """

    _tower_adapters = {}   # image tower kind -> the subclass adapting it (its ``tower=``)

    def __init_subclass__(cls, tower=None, **kwargs):
        super().__init_subclass__(**kwargs)
        if tower is not None:
            OpenCLIPBackbone._tower_adapters[tower] = cls

    def __new__(cls, model=None, *args, **kwargs):
        # an open_clip model whose image tower is a timm model gets the timm-tower adapter
        # (``model`` is None when copy/pickle re-create an instance)
        if cls is OpenCLIPBackbone and model is not None and open_clip.get_model_config(
                _resolve_model_name(model)).get('vision_cfg', {}).get('timm_model_name'):
            cls = OpenCLIPBackbone._tower_adapters['timm']
        return super().__new__(cls)

    def __init__(self, model, pretrained=None, frozen=False, pos_interpolation='size'):
        super().__init__()
        self._set_pos_interpolation(pos_interpolation)
        name = _resolve_model_name(model)
        self.model_name = name
        sd = None
        kwargs = {}
        if pretrained is not None:
            path = Path(pretrained)
            if not path.is_file():
                raise FileNotFoundError(f'CLIP checkpoint not found: {path} (weights are '
                                        f'never downloaded: give a local checkpoint file)')
            sd = read_state_dict(path)
            openai = any(k in sd for k in _OPENAI_EXTRA_KEYS)
            if openai and not open_clip.get_model_config(name).get('quick_gelu'):
                logger.info('%s is an OpenAI checkpoint: building %s with QuickGELU, as OpenAI '
                            'trained it', path, name)
                kwargs['force_quick_gelu'] = True
        # open_clip logs 'No pretrained weights loaded'; ours below says what happens
        with drop_log_records('No pretrained weights loaded'):
            self.model = open_clip.create_model(name, pretrained=None, **kwargs)
        self._check_tower(self.model.visual)
        if pretrained is not None:
            self._load(sd, pretrained)
        else:
            logger.warning('OpenCLIPBackbone(%s): pretrained=None, ' + RANDOM_WEIGHTS + ' '
                           '(initialised on purpose, nothing loaded)', name)

        self._tokenizer = None      # built on first use (a Hugging Face one needs local files)
        self._tower_dims(self.model.visual)
        pp = get_model_preprocess_cfg(self.model)
        self.mean = tuple(float(m) * 255 for m in pp.get('mean', open_clip.OPENAI_DATASET_MEAN))
        self.std = tuple(float(s) * 255 for s in pp.get('std', open_clip.OPENAI_DATASET_STD))

        self.freeze(frozen)

    def _check_tower(self, visual):
        if not isinstance(visual, VisionTransformer):
            raise ValueError(f'{self.model_name}: only ViT image towers are supported (dense '
                             f'patch tokens); got {type(visual).__name__} (ResNet CLIPs are not)')
        if visual.attn_pool is not None or visual.pool_type not in ('tok', 'avg'):
            raise ValueError(f'{self.model_name}: attentional / no pooling is not supported')

    def _tower_dims(self, visual):
        patch = visual.patch_size
        if patch[0] != patch[1]:
            raise ValueError(f'{self.model_name}: non-square patches {patch} are not supported')
        self.patch_size = int(patch[0])
        size = tuple(int(s) for s in visual.image_size)
        self.image_size = size[0] if size[0] == size[1] else size
        self._native_grid = tuple(int(g) for g in visual.grid_size)
        self.width = int(visual.transformer.width)
        self.num_layers = len(visual.transformer.resblocks)
        self.num_heads = int(visual.transformer.resblocks[-1].attn.num_heads)
        self.embed_dim = int(visual.proj.shape[1])

    def _load(self, sd, path):
        sd = {k: v for k, v in sd.items() if k not in _OPENAI_EXTRA_KEYS}
        sd = strip_prefix(sd, 'visual.conv1.weight')
        model_sd = self.model.state_dict()
        # non-persistent buffers (e.g. the text causal mask) that scripted models save anyway
        for k in set(dict(self.model.named_buffers())) - set(model_sd):
            sd.pop(k, None)
        if 'logit_scale' in sd and 'logit_scale' in model_sd:
            sd['logit_scale'] = sd['logit_scale'].reshape(model_sd['logit_scale'].shape)
        if 'logit_bias' in model_sd and 'logit_bias' not in sd and 'logit_scale' in sd:
            sd['logit_bias'] = torch.zeros_like(model_sd['logit_bias'])
        if hasattr(self.model, 'text') and 'text_projection' in sd:
            sd = convert_to_custom_text_state_dict(sd)
        check_compatible(model_sd, sd, path, model_name=f'open_clip model {self.model_name}')
        self.model.load_state_dict(sd, strict=True)
        logger.info('OpenCLIPBackbone(%s): loaded %s', self.model_name, path)

    def state_dict_for_export(self):
        """The open_clip model's own state dict (loadable as ``pretrained=``)."""
        return dict(self.model.state_dict())

    # text side
    def tokenize(self, texts):
        if isinstance(texts, str):
            texts = [texts]
        if self._tokenizer is None:
            hf = open_clip.get_model_config(self.model_name).get('text_cfg', {}).get(
                'hf_tokenizer_name')
            try:
                self._tokenizer = open_clip.get_tokenizer(self.model_name)
            except Exception as err:
                if not hf:
                    raise
                raise RuntimeError(f'{self.model_name} uses the Hugging Face tokenizer {hf!r}, '
                                   f'which is not available locally ({type(err).__name__}); '
                                   f'put its files in the Hugging Face cache (nothing is '
                                   f'downloaded)') from None
        return self._tokenizer(list(texts))

    def encode_text(self, tokens):
        return self.model.encode_text(tokens)

    @property
    def logit_scale(self):
        return self.model.logit_scale.exp()

    def text_named_tensors(self):
        return [(n, p) for n, p in self.model.named_parameters() if not n.startswith('visual.')]

    # image side
    def embed(self, images):
        v = self.model.visual
        h, w = self._grid(images)
        x = v.conv1(images.to(v.conv1.weight.dtype))
        x = x.flatten(2).transpose(1, 2)
        cls = v.class_embedding.to(x.dtype).view(1, 1, -1).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1)
        x = x + self.interpolate_pos_embed(h, w).to(x.dtype)
        return v.ln_pre(x), (h, w)

    def run_blocks(self, x, start=0, end=None):
        tr = self.model.visual.transformer
        blocks = tr.resblocks[start:end]
        if not tr.batch_first:
            x = x.transpose(0, 1)
        for blk in blocks:
            if tr.grad_checkpointing and torch.is_grad_enabled():
                x = torch.utils.checkpoint.checkpoint(blk, x, use_reentrant=False)
            else:
                x = blk(x)
        return x if tr.batch_first else x.transpose(0, 1)

    def project(self, x):
        v = self.model.visual
        return v.ln_post(x) @ v.proj

    def _pool_cls(self, x):
        v = self.model.visual
        if v.pool_type == 'tok':
            return None
        if v.final_ln_after_pool:
            return v.ln_post(x[:, 1:].mean(1)) @ v.proj
        return v.ln_post(x[:, 1:]).mean(1) @ v.proj

    def _pos_table(self):
        return self.model.visual.positional_embedding

    # per-block attention access (Backbone)
    def _block(self, block):
        blk = self.model.visual.transformer.resblocks[block]
        if not isinstance(blk, ResidualAttentionBlock) or not blk.attn._qkv_same_embed_dim:
            raise MissingCapability(f'{self.model_name}: per-block attention access needs a '
                                    f'standard ResidualAttentionBlock, got '
                                    f'{type(blk).__name__}')
        return blk

    def qkv(self, x, block=-1):
        blk = self._block(block)
        attn = blk.attn
        return F.linear(blk.ln_1(x), attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)

    def attn_proj(self, o, block=-1):
        blk = self._block(block)
        return blk.ls_1(blk.attn.out_proj(o))

    def mlp(self, x, block=-1):
        blk = self._block(block)
        return blk.ls_2(blk.mlp(blk.ln_2(x)))
