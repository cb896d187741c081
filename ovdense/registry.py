"""Registration into the OpenMMLab registries.

Segmentation and shared modules register into mmseg's registries when their module is imported
(``custom_imports=dict(imports=['ovdense.models'])``); nothing there imports mmdet. Importing
``ovdense.detection`` registers the detection modules into mmdet's registries and, from then on, the
shared ones (backbones, the text encoder, CLIPSelf, hooks, ...) too, so a stock config of either library
builds them by type name.
"""
from __future__ import annotations

from typing import Callable, TypeVar

T = TypeVar('T', bound=type)

_KINDS = ('MODELS', 'DATASETS', 'TRANSFORMS', 'METRICS', 'HOOKS', 'VISUALIZERS')
_SHARED: list[tuple[str, type]] = []  # (kind, class) of every module meant for mmdet's registries too
_MMDET = False  # set once ovdense.detection is imported


def _into_mmdet(kind: str, cls: type) -> None:
    import mmdet.registry as r
    getattr(r, kind).register_module(force=True)(cls)


def register(kind: str = 'MODELS', *, mmseg: bool = True, mmdet: bool = True) -> Callable[[T], T]:
    """Class decorator: register under the class name (which starts with ``OV``).

    Args:
        kind: registry name, one of MODELS, DATASETS, TRANSFORMS, METRICS, HOOKS, VISUALIZERS.
        mmseg: register into mmseg's registry now.
        mmdet: register into mmdet's registry, once detection is imported (at once if it is).
    """
    if kind not in _KINDS:
        raise ValueError(f"unknown registry kind '{kind}'; valid: {list(_KINDS)}")

    def deco(cls: T) -> T:
        if not cls.__name__.startswith('OV'):
            raise ValueError(f'registered ovdense names start with OV: {cls.__name__}')
        if mmseg:
            import mmseg.registry as r
            getattr(r, kind).register_module(force=True)(cls)
        if mmdet:
            _SHARED.append((kind, cls))
            if _MMDET or not mmseg:  # detection-only modules live in modules that import mmdet anyway
                _into_mmdet(kind, cls)
        return cls

    return deco


def enable_mmdet() -> None:
    """Register every shared module into mmdet's registries, and the ones imported later as they come."""
    global _MMDET
    _MMDET = True
    for kind, cls in _SHARED:
        _into_mmdet(kind, cls)
