"""transformers adapter: a ``CLIPModel`` + ``CLIPTokenizer`` saved in a local folder."""
import inspect
import json
import logging
import pickle
from pathlib import Path

import torch

from ..checkpoint import CheckpointError
from ..registry import BACKBONES
from ._vit import ViTDenseMixin
from .base import Backbone

logger = logging.getLogger(__name__)


def _sorted_keys(keys, n=10):
    keys = sorted(keys)
    more = f' ... (+{len(keys) - n} more)' if len(keys) > n else ''
    return ', '.join(keys[:n]) + more


@BACKBONES.register_module()
class HFCLIPBackbone(ViTDenseMixin, Backbone):
    """transformers CLIP ViT from a local save_pretrained folder (model + tokenizer).

    Args:
        path: a folder written by ``CLIPModel.save_pretrained`` and
            ``CLIPTokenizer.save_pretrained`` (a ``preprocessor_config.json`` there, if any,
            gives the pixel mean/std). Nothing is downloaded.
        frozen: no parameter requires grad and the module stays in eval mode.
        pos_interpolation: ``size`` or ``dino``, as for ``OpenCLIPBackbone``.
    """

    def __init__(self, path, frozen=False, pos_interpolation='size'):
        super().__init__()
        self._set_pos_interpolation(pos_interpolation)
        from transformers import CLIPModel, CLIPTokenizer
        folder = Path(path)
        if not folder.is_dir():
            raise FileNotFoundError(f'transformers CLIP folder not found: {folder} (weights are '
                                    f'never downloaded: give a local save_pretrained folder)')
        self.path = str(folder)
        try:    # transformers reads .bin weights with weights_only=True, safetensors as data
            model, info = CLIPModel.from_pretrained(folder, local_files_only=True,
                                                    output_loading_info=True,
                                                    ignore_mismatched_sizes=True)
        except pickle.UnpicklingError as err:
            raise CheckpointError(f'refusing to load the weights in {folder}: they need Python '
                                  f'objects beyond tensors, and unpickling objects can run code '
                                  f'({str(err).strip().splitlines()[-1]})') from None
        missing, mismatched = info.get('missing_keys') or (), info.get('mismatched_keys') or ()
        if missing or mismatched:
            parts = []
            if missing:
                parts.append(f'{len(missing)} missing keys: {_sorted_keys(missing)}')
            if mismatched:
                shapes = [f'{k}: checkpoint {tuple(a)} vs model {tuple(b)}'
                          for k, a, b in sorted(mismatched)]
                parts.append(f'{len(shapes)} shape mismatches: {_sorted_keys(shapes)}')
            vcfg = model.config.vision_config
            raise ValueError(
                f'checkpoint in {folder} does not fit its config.json (which describes a vision '
                f'tower of width {vcfg.hidden_size}, patch {vcfg.patch_size}, '
                f'{vcfg.num_hidden_layers} layers; are the weights of another model?): '
                + '; '.join(parts))
        if info.get('unexpected_keys'):
            logger.warning('HFCLIPBackbone(%s): ignored unexpected keys %s', folder,
                           _sorted_keys(info['unexpected_keys']))
        self.model = model
        self._takes_causal_mask = 'causal_attention_mask' in inspect.signature(
            type(model.vision_model.encoder.layers[0]).forward).parameters
        self._tokenizer = CLIPTokenizer.from_pretrained(folder, local_files_only=True)

        vcfg = model.config.vision_config
        self.patch_size = int(vcfg.patch_size)
        self.image_size = int(vcfg.image_size)
        self._native_grid = (self.image_size // self.patch_size,) * 2
        self.width = int(vcfg.hidden_size)
        self.num_layers = len(model.vision_model.encoder.layers)
        self.num_heads = int(vcfg.num_attention_heads)
        self.embed_dim = int(model.visual_projection.out_features)
        self.context_length = int(model.config.text_config.max_position_embeddings)
        pp = folder / 'preprocessor_config.json'
        if pp.is_file():
            cfg = json.loads(pp.read_text())
            if cfg.get('image_mean') and cfg.get('image_std'):
                self.mean = tuple(float(m) * 255 for m in cfg['image_mean'])
                self.std = tuple(float(s) * 255 for s in cfg['image_std'])

        self.freeze(frozen)

    def state_dict_for_export(self):
        """The transformers ``CLIPModel`` state dict."""
        return dict(self.model.state_dict())

    # text side
    def tokenize(self, texts):
        if isinstance(texts, str):
            texts = [texts]
        return self._tokenizer(list(texts), padding='max_length', truncation=True,
                               max_length=self.context_length, return_tensors='pt')['input_ids']

    def encode_text(self, tokens):
        out = self.model.get_text_features(input_ids=tokens)
        return out if torch.is_tensor(out) else out.pooler_output

    @property
    def logit_scale(self):
        return self.model.logit_scale.exp()

    def text_named_tensors(self):
        return [(n, p) for n, p in self.model.named_parameters()
                if n.startswith(('text_model.', 'text_projection.')) or n == 'logit_scale']

    # image side
    def embed(self, images):
        emb = self.model.vision_model.embeddings
        h, w = self._grid(images)
        x = emb.patch_embedding(images.to(emb.patch_embedding.weight.dtype))
        x = x.flatten(2).transpose(1, 2)
        cls = emb.class_embedding.to(x.dtype).view(1, 1, -1).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1)
        x = x + self.interpolate_pos_embed(h, w).to(x.dtype)
        return self.model.vision_model.pre_layrnorm(x), (h, w)

    def run_blocks(self, x, start=0, end=None):
        layers = self.model.vision_model.encoder.layers
        # transformers 4.x layers also take a (required) causal mask; 5.x ones do not
        extra = {'causal_attention_mask': None} if self._takes_causal_mask else {}
        for layer in layers[start:end]:
            x = layer(x, None, **extra)
            if isinstance(x, tuple):  # older transformers return (hidden_states, ...)
                x = x[0]
        return x

    def project(self, x):
        return self.model.visual_projection(self.model.vision_model.post_layernorm(x))

    def _pool_cls(self, x):
        return None

    def _pos_table(self):
        return self.model.vision_model.embeddings.position_embedding.weight

    # per-block attention access (Backbone)
    def qkv(self, x, block=-1):
        blk = self.model.vision_model.encoder.layers[block]
        y = blk.layer_norm1(x)
        a = blk.self_attn
        return a.q_proj(y), a.k_proj(y), a.v_proj(y)

    def attn_proj(self, o, block=-1):
        return self.model.vision_model.encoder.layers[block].self_attn.out_proj(o)

    def mlp(self, x, block=-1):
        blk = self.model.vision_model.encoder.layers[block]
        return blk.mlp(blk.layer_norm2(x))
