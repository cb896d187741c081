"""Checkpoint files and key formats: weights-only loading, OpenAI state dicts, EVA-CLIP configs and key maps."""
from __future__ import annotations

import os
import zipfile
from typing import Any, Iterable, Iterator, Mapping

import torch
import torch.nn as nn


WEIGHT_FORMATS = ('open_clip', 'eva_clip')
# keys present in OpenAI TorchScript state dicts that are not parameters
_OPENAI_EXTRA_KEYS = ('input_resolution', 'context_length', 'vocab_size')


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, or does not fit the model."""


def _cfg_from_openai_state_dict(state: Mapping[str, torch.Tensor]) -> dict:
    """open_clip model config of an OpenAI-format ViT state dict (as openai's ``build_model``)."""
    def shape(key: str) -> tuple[int, ...]:
        return tensor_shape(state, key)
    width = shape('visual.conv1.weight')[0]
    layers = len([k for k in state if k.startswith('visual.') and k.endswith('.attn.in_proj_weight')])
    patch = shape('visual.conv1.weight')[-1]
    grid = round((shape('visual.positional_embedding')[0] - 1) ** 0.5)
    twidth = shape('ln_final.weight')[0]
    return dict(embed_dim=shape('text_projection')[1], quick_gelu=True,
                vision_cfg=dict(layers=layers, width=width, patch_size=patch, image_size=patch * grid),
                text_cfg=dict(context_length=shape('positional_embedding')[0],
                              vocab_size=shape('token_embedding.weight')[0], width=twidth,
                              heads=twidth // 64,
                              layers=len({k.split('.')[2] for k in state if k.startswith('transformer.resblocks')})))


# ------------------------------------------------------------------------------- EVA-CLIP
def is_eva_clip_config(cfg: Mapping[str, Any]) -> bool:
    """True for an EVA-CLIP / CLIPSelf model config (``vision_cfg.eva_model_name``)."""
    return 'eva_model_name' in cfg.get('vision_cfg', {})


# the EVA-CLIP vision options of the EVA-02 variant timm implements (xattn / fusedLN only pick kernels)
_EVA_REQUIRED = dict(postnorm=False, qkv_bias=True, rope=True, subln=True, naiveswiglu=True)


def eva_clip_model_cfg(cfg: Mapping[str, Any]) -> dict:
    """The open_clip model config of an EVA-CLIP config: a timm EVA-02 trunk of the same size (registered
    with timm under a name made of its sizes) and open_clip's text tower."""
    v, t = cfg['vision_cfg'], cfg['text_cfg']
    unsupported = {k: v[k] for k, want in _EVA_REQUIRED.items() if k in v and v[k] != want}
    if unsupported or v.get('layer_scale_init_value') or v.get('global_average_pool'):
        raise ValueError(f'EVA-CLIP vision config not supported (EVA-02 with RoPE, sub-LN, SwiGLU, q/v bias): '
                         f'{unsupported or v}')
    heads = v['width'] // v.get('head_width', 64)
    name = _register_eva_trunk(width=v['width'], depth=v['layers'], heads=heads, mlp_ratio=float(v['mlp_ratio']),
                               patch=v['patch_size'], image=v['image_size'], ref=int(v.get('pt_hw_seq_len', 16)))
    text = dict(context_length=t['context_length'], vocab_size=t['vocab_size'], width=t['width'],
                heads=t['heads'], layers=t['layers'])
    return dict(embed_dim=cfg['embed_dim'], custom_text=True,
                vision_cfg=dict(image_size=v['image_size'], timm_model_name=name, timm_model_pretrained=False,
                                timm_pool='token', timm_proj=None),
                text_cfg=text)


def _register_eva_trunk(*, width: int, depth: int, heads: int, mlp_ratio: float, patch: int, image: int,
                        ref: int) -> str:
    """A timm model name for an EVA-02 trunk of these sizes (EVA-CLIP's sub-LN / SwiGLU / RoPE variant,
    timm's ``eva02_*_clip``), registered with timm on first use."""
    import timm
    from timm.models import build_model_with_cfg, register_model
    from timm.models.eva import Eva
    name = f'ovdense_eva02_w{width}_d{depth}_h{heads}_m{mlp_ratio:g}_p{patch}_i{image}_r{ref}'.replace('.', 'x')
    if name not in timm.list_models(name):
        def entry(pretrained: bool = False, **kwargs: Any) -> nn.Module:
            if pretrained:
                raise ValueError(f'{name} has no timm pretrained weights: load an EVA-CLIP checkpoint')
            args = dict(img_size=image, patch_size=patch, embed_dim=width, depth=depth, num_heads=heads,
                        qkv_fused=False, mlp_ratio=mlp_ratio, swiglu_mlp=True, scale_mlp=True, scale_attn_inner=True,
                        use_rot_pos_emb=True, ref_feat_shape=(ref, ref), global_pool='token')
            kwargs.pop('pretrained_cfg', None)
            cfg = dict(architecture=name, input_size=(3, image, image), num_classes=0)
            return build_model_with_cfg(Eva, name, False, pretrained_cfg=cfg, **dict(args, **kwargs))
        entry.__name__ = name
        entry.__module__ = __name__
        register_model(entry)
    return name


# EVA-CLIP / CLIPSelf visual keys -> timm EVA-02 trunk keys (open_clip's ``visual.trunk.*``)
_EVA_KEY_MAP = (('.attn.q_bias', '.attn.q_proj.bias'), ('.attn.v_bias', '.attn.v_proj.bias'),
                ('.attn.inner_attn_ln.', '.attn.norm.'), ('.mlp.w1.', '.mlp.fc1_g.'), ('.mlp.w2.', '.mlp.fc1_x.'),
                ('.mlp.ffn_ln.', '.mlp.norm.'), ('.mlp.w3.', '.mlp.fc2.'))


def is_eva_clip_state(state: Mapping[str, torch.Tensor]) -> bool:
    """True for an EVA-CLIP-format state dict (``visual.blocks.N.attn.q_bias`` ... ``mlp.w1``)."""
    return any(k.startswith('visual.blocks.') and (k.endswith('.attn.q_bias') or '.mlp.w1.' in k) for k in state)


def eva_clip_to_open_clip(state: Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
    """An EVA-CLIP state dict in open_clip's names (``visual.trunk.*``; the text tower and ``logit_scale``
    keep theirs). The RoPE tables (``rope.freqs_cos`` / ``freqs_sin``) are dropped: they are recomputed.
    A :class:`TensorFile` stays lazy (a :class:`Renamed` view of it)."""
    names = {}
    for k in state:
        new = k
        if k.startswith('visual.'):
            if k.endswith(('rope.freqs_cos', 'rope.freqs_sin')):
                continue
            new = 'visual.trunk.' + k[len('visual.'):]
            for a, b in _EVA_KEY_MAP:
                new = new.replace(a, b)
        names[new] = k
    return Renamed(state, names)


def open_clip_to_eva_clip(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of :func:`eva_clip_to_open_clip` (without the RoPE tables, which EVA-CLIP recomputes
    when loading with ``RoPE=1``)."""
    out = {}
    for k, v in state.items():
        if k.startswith('visual.trunk.'):
            k = 'visual.' + k[len('visual.trunk.'):]
            for a, b in _EVA_KEY_MAP:
                k = k.replace(b, a)
        out[k] = v
    return out


# ------------------------------------------------------------------------------- loading
class TensorFile(Mapping[str, torch.Tensor]):
    """The tensors of a ``.safetensors`` file, each read from disk when it is looked up (``pread``: nothing of the
    file stays in memory), so that a model's weights are loaded with one tensor in flight instead of a second copy
    of all of them (:func:`load_into`). Shapes and dtypes come from the header without reading.

    Raises:
        CheckpointError: the file is missing or not a safetensors file.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        from safetensors import SafetensorError, safe_open
        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise CheckpointError(f'checkpoint file not found: {self.path}')
        try:
            self._file = safe_open(self.path, framework='pt', backend='pread')
            self._keys = list(self._file.keys())
            self._keyset = set(self._keys)
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f'cannot read safetensors checkpoint {self.path}: {e}') from None

    def __getitem__(self, key: str) -> torch.Tensor:
        if key not in self._keyset:
            raise KeyError(key)
        return self._file.get_tensor(key)

    def __contains__(self, key: object) -> bool:  # Mapping's default would read the tensor
        return key in self._keyset

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(self._file.get_slice(key).get_shape())


class Renamed(Mapping[str, torch.Tensor]):
    """A view of ``source`` under new names (``names``: new -> old), floating-point tensors cast to float32 when
    ``to_float``; values are read from ``source`` only when looked up, so a :class:`TensorFile` stays lazy."""

    def __init__(self, source: Mapping[str, torch.Tensor], names: Mapping[str, str], *, to_float: bool = False) -> None:
        self.source, self.names, self.to_float = source, dict(names), to_float

    def __getitem__(self, key: str) -> torch.Tensor:
        v = self.source[self.names[key]]
        return v.float() if self.to_float and v.is_floating_point() else v

    def __contains__(self, key: object) -> bool:  # Mapping's default would read the tensor
        return key in self.names

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def shape(self, key: str) -> tuple[int, ...]:
        return tensor_shape(self.source, self.names[key])


def tensor_shape(state: Mapping[str, torch.Tensor], key: str) -> tuple[int, ...]:
    """The shape of ``state[key]``, without reading it where ``state`` knows it (:class:`TensorFile`)."""
    return state.shape(key) if hasattr(state, 'shape') else tuple(state[key].shape)


def load_state_dict_file(path: str | os.PathLike, *, lazy: bool = False) -> Mapping[str, torch.Tensor]:
    """Read a state dict without unpickling arbitrary objects.

    ``.safetensors`` files are read with safetensors (with ``lazy``: a :class:`TensorFile`, each tensor read when
    looked up); others with ``torch.load(weights_only=True)``.
    An OpenAI TorchScript archive (the original ``ViT-B-16.pt``) is read with ``torch.jit.load``, which
    executes no pickled Python. mmengine checkpoints (``{'state_dict': ...}``) are unwrapped.

    Raises:
        CheckpointError: missing file, or a file that is none of the above.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f'checkpoint file not found: {path}')
    if path.endswith('.safetensors'):
        file = TensorFile(path)
        return file if lazy else {k: file[k] for k in file}
    try:
        obj = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for foreign files
        if zipfile.is_zipfile(path) and any(n.split('/', 1)[-1].startswith('code/')
                                            for n in zipfile.ZipFile(path).namelist()):
            try:
                return {k: v.float() for k, v in torch.jit.load(path, map_location='cpu').state_dict().items()}
            except Exception as e2:  # noqa: BLE001
                raise CheckpointError(f'cannot read TorchScript checkpoint {path}: {e2}') from None
        raise CheckpointError(f'cannot read checkpoint {path} as a weights-only state dict '
                              f'(torch.load(weights_only=True) failed: {_first_line(e)})') from None
    if isinstance(obj, dict) and 'state_dict' in obj and isinstance(obj['state_dict'], dict):
        obj = obj['state_dict']
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f'checkpoint {path} is not a state dict of tensors')
    return obj


def _normalize_keys(state: Mapping[str, torch.Tensor],
                    model_keys: Iterable[str] = ('visual.proj',)) -> Mapping[str, torch.Tensor]:
    """Strip wrappers (``module.``, ``model.``, ``clip.model.``, ``backbone.clip.model.``) and OpenAI extras; float32
    values (a lazy view: see :class:`Renamed`)."""
    model_keys = set(model_keys)
    names = {k: k for k in state if k not in _OPENAI_EXTRA_KEYS}
    for prefix in ('module.', 'model.', 'clip.model.', 'backbone.clip.model.'):
        if not (names.keys() & model_keys) and all(k.startswith(prefix) for k in names):
            names = {k[len(prefix):]: old for k, old in names.items()}
    return Renamed(state, names, to_float=True)


def _first_line(e: BaseException) -> str:
    """The first line of an exception's message, or its type's name when it has none (``EOFError()``: an empty file)."""
    lines = str(e).splitlines()
    return lines[0] if lines else f'{type(e).__name__} (an empty or truncated file)'


def check_values(model: nn.Module, state: Mapping[str, torch.Tensor], path: str | os.PathLike) -> None:
    """Refuse weights that cannot be what the model's floating-point tensors hold: integer or boolean tensors (a cast
    would silently change them) and NaN / infinite values, naming the tensor.

    Raises:
        CheckpointError: the first such tensor.
    """
    own = model.state_dict()
    for k, v in state.items():
        if k not in own or not own[k].is_floating_point():
            continue
        if not v.is_floating_point():
            raise CheckpointError(f'checkpoint {os.fspath(path)}: tensor {k} is {v.dtype}, the model holds '
                                  f'{own[k].dtype} there (a cast would change its values): not a weights file of it')
        lo, hi = torch.aminmax(v.reshape(-1)) if v.numel() else (v.new_zeros(()), v.new_zeros(()))
        if bool(torch.isfinite(lo) & torch.isfinite(hi)):  # NaN propagates through min / max; no (N,) mask
            continue
        bad = int((~torch.isfinite(v)).sum())
        if bad:
            raise CheckpointError(f'checkpoint {os.fspath(path)}: tensor {k} has {bad} NaN or infinite values of '
                                  f'{v.numel()}: a diverged or damaged checkpoint')


def _diff_keys(model: nn.Module, state: Mapping[str, torch.Tensor]) -> tuple[list[str], list[str]]:
    keys = set(model.state_dict().keys())
    return sorted(keys - state.keys()), sorted(state.keys() - keys)


def load_into(model: nn.Module, state: Mapping[str, torch.Tensor], path: str | os.PathLike, *, what: str) -> None:
    """Copy ``state`` into ``model``'s parameters and buffers, strictly, all or nothing: keys, shapes (from a
    :class:`TensorFile`'s header, unread) and values (:func:`check_values`, one tensor at a time) are checked before
    anything is written; then the tensors are copied one at a time, so a :class:`TensorFile` never has more than
    one of them in memory besides the model (``load_state_dict`` would need the whole state at once).

    Args:
        what: how errors name the checkpoint and model (e.g. ``"checkpoint x.safetensors does not fit 'ViT-B-16'"``).

    Raises:
        CheckpointError: missing / unexpected keys, a shape that differs, or a value :func:`check_values` refuses.
    """
    missing, unexpected = _diff_keys(model, state)
    if missing or unexpected:
        raise CheckpointError(f'{what}: {len(missing)} missing keys (e.g. {missing[:3]}), '
                              f'{len(unexpected)} unexpected keys (e.g. {unexpected[:3]})')
    own = model.state_dict()
    wrong = [f'{k}: {tensor_shape(state, k)} in the file, {tuple(t.shape)} in the model'
             for k, t in own.items() if tensor_shape(state, k) != tuple(t.shape)]
    if wrong:
        raise CheckpointError(f'{what}: {len(wrong)} tensors differ in shape (e.g. {wrong[:3]})')
    check_values(model, state, path)
    with torch.no_grad():
        for k, t in own.items():
            t.copy_(state[k])


def mark_loaded(module: nn.Module, state_dict: Mapping[str, Any], prefix: str, *args: Any) -> None:
    """``load_state_dict`` pre-hook of :class:`CLIPModel` and :class:`~ovdense.clip.VFM`: a state dict that holds
    the module's weights (``<prefix>model.*``, e.g. a checkpoint written by the Runner) counts as loading them."""
    if any(k.startswith(prefix + 'model.') for k in state_dict):
        module._weights_loaded = True


def load_pending_weights(model: nn.Module) -> list[str]:
    """Load the named weights of every CLIP and VFM inside ``model`` that has not received them (see
    :attr:`~ovdense.clip.CLIPModel.weights_pending`): a model built outside :func:`ovdense.apis.init_model` and the
    Runner (e.g. by ``MMSegInferencer`` / ``DetInferencer``, which never call ``init_weights``) runs with the weights
    its config names, never with random ones. Weights that came with a checkpoint are kept.

    Returns:
        the names of the models loaded (logged too).
    """
    from mmengine.logging import print_log
    loaded = []
    for module in model.modules():
        if getattr(module, 'weights_pending', False):
            name = getattr(module, 'name', type(module).__name__)
            print_log(f"loading the weights of '{name}' named in the config: the model was built without "
                      'init_weights() (e.g. by an OpenMMLab inferencer)', logger='current')
            module.load_weights()
            loaded.append(name)
    return loaded
