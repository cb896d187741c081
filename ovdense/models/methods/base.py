"""What a dense method is: a registered module that runs a CLIP ViT (the backbone's public pieces) so that its
patch tokens speak text.

A method receives the :class:`~ovdense.models.backbones.OVCLIPViT` whose tower it runs and the images; the
backbone owns the protocol-wide knobs (position-embedding interpolation, patch padding, layer-norm epsilon,
activation) and exposes the pieces: :meth:`embed`, :meth:`trunk`, :meth:`block`, :meth:`qkv`, :meth:`out`,
:meth:`mlp`, :meth:`ln`, :meth:`project`, ``tower`` (blocks, norms, RoPE). Most methods replace the last block
only (:meth:`OVDenseMethod.last_block`); others override :meth:`OVDenseMethod.forward` (several layers, a second
model, the vocabulary). A user's method is a subclass in the user's own file, registered with
``@MODELS.register_module()`` (mmseg's, or :func:`ovdense.registry.register`) and named in a config as
``model.backbone.method=dict(type=...)`` with ``custom_imports``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

import torch
import torch.nn as nn

if TYPE_CHECKING:  # the backbone imports this module
    from ..backbones.clip_vit import OVCLIPViT
    from ...clip import ViTBlock

class DenseTokens(NamedTuple):
    """A dense forward's result.

    Attributes:
        tokens: (B, P + h*w, D) tokens in the text space; the last h*w are the patches, row-major (P prefix
            tokens, e.g. a CLS, may come first; a method may return none).
        grid: (h, w) of the patch tokens (a proxy method may return another grid than the CLIP's).
        intermediates: the backbone's ``out_indices`` block outputs, (B, width, h', w') each.
        extras: what else a method computes on the way that a training loss reads (e.g. DeCLIP's last-block
            ``'context'`` features); None when nothing.
    """
    tokens: torch.Tensor
    grid: tuple[int, int]
    intermediates: list[torch.Tensor]
    extras: dict[str, Any] | None = None


class OVDenseMethod(nn.Module):
    """Base of the dense methods: standard blocks, then :meth:`last_block` (a standard block here).

    Class attributes:
        name: the method's short name (config files ``{name}_{model}_{dataset}-{size}.py``, demos' ``--mode``).
        needs_text: the forward takes the vocabulary's query embeddings ``text`` (Q, D) (e.g. ResCLIP's
            temporary segmentation); the segmentor then passes them.
        trained_for: the pretrainer whose weights the method is meant for (DeCLIP's decoupled block: ``'declip'``);
            empty for training-free methods of any CLIP (those ship the training-free benchmark protocols).
    """

    name: ClassVar[str] = ''
    needs_text: ClassVar[bool] = False
    trained_for: ClassVar[str] = ''

    def check(self, vit: 'OVCLIPViT') -> None:
        """Called once by the backbone it is attached to: raise a ValueError if the tower cannot run the method."""

    def init_weights(self) -> None:
        """Load the weights of the method's own models (proxies); the CLIP's are the backbone's."""

    def unused_parameters(self, vit: 'OVCLIPViT') -> list[nn.Parameter]:
        """The tower's parameters this method's forward never reaches (frozen when the tower is trained through it,
        e.g. the last block's FFN of a method that drops it)."""
        return []

    def embed(self, vit: 'OVCLIPViT', images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """(B, 3, H, W) images -> the tokens entering the first block (B, P + h*w, width) and the grid (h, w)
        (:meth:`OVCLIPViT.trunk` starts here; the backbone's :meth:`~OVCLIPViT.embed` unless a method has its own)."""
        return vit.embed(images)

    def forward(self, vit: 'OVCLIPViT', images: torch.Tensor, *, text: torch.Tensor | None = None) -> DenseTokens:
        """Run ``vit`` on (B, 3, H, W) normalised images; ``text``: (Q, D) query embeddings if ``needs_text``."""
        trunk = vit.trunk(images, stop=-1)
        blk = vit.tower.blocks[-1]
        x = self.last_block(vit, blk, trunk.tokens, trunk.grid, trunk.rope)
        inter = trunk.intermediates + vit.collect(len(vit.tower.blocks) - 1, x, trunk.grid)
        return DenseTokens(vit.project(x), trunk.grid, inter)

    def last_block(self, vit: 'OVCLIPViT', blk: 'ViTBlock', x: torch.Tensor, grid: tuple[int, int],
                   rope: Any = None) -> torch.Tensor:
        """(B, P + h*w, width) tokens entering the last block -> leaving it."""
        return vit.block(blk, x, rope)

    def extra_repr(self) -> str:
        return self.name


def attention_residual_ffn(vit: 'OVCLIPViT', blk: 'ViTBlock', x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """The rest of a standard block after its attention output ``out``: residual, then the FFN with its own."""
    x = x + blk.ls_1(out)
    return x + blk.ls_2(vit.mlp(blk, vit.ln(blk.ln_2, x)))


def registered_methods() -> dict[str, type[OVDenseMethod]]:
    """Every dense method in mmseg's model registry (ovdense's and the user's imported ones), by short name
    (the type name where a method has none)."""
    from mmseg.registry import MODELS
    out = {}
    for key, cls in MODELS.module_dict.items():
        if isinstance(cls, type) and issubclass(cls, OVDenseMethod):
            out[cls.name or key] = cls
    return out


def build_method(cfg: 'dict | OVDenseMethod | None') -> OVDenseMethod:
    """A method from its config ``dict(type=..., **knobs)`` (mmseg's registry), an instance, or None (vanilla)."""
    if isinstance(cfg, OVDenseMethod):
        return cfg
    if cfg is None:
        cfg = dict(type='OVVanilla')
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise ValueError(f'method must be dict(type=...) naming a registered dense method, got {cfg!r}; registered: '
                         f'{sorted(c.__name__ for c in registered_methods().values())}')
    from mmseg.registry import MODELS
    cls = MODELS.get(cfg['type']) if isinstance(cfg['type'], str) else cfg['type']
    if cls is None or not (isinstance(cls, type) and issubclass(cls, OVDenseMethod)):
        raise ValueError(f"unknown dense method '{cfg['type']}'; registered: "
                         f'{sorted(c.__name__ for c in registered_methods().values())} (a method of your own: '
                         'register it and list its module in custom_imports)')
    return cls(**{k: v for k, v in cfg.items() if k != 'type'})


def clip_only_methods() -> dict[str, type[OVDenseMethod]]:
    """The registered methods that need nothing but the CLIP (they build without arguments: no proxy model)."""
    import inspect
    out = {}
    for name, cls in registered_methods().items():
        params = list(inspect.signature(cls.__init__).parameters.values())[1:]
        if all(p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
            out[name] = cls
    return out
