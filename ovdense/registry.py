"""Registration into the OpenMMLab registries.

ovdense modules register into both mmseg's and mmdet's registries, so a stock config of either
library builds them by type name after ``custom_imports=dict(imports=['ovdense.models'])``.
"""
from __future__ import annotations

from typing import Callable, TypeVar

T = TypeVar('T', bound=type)

_KINDS = ('MODELS', 'DATASETS', 'TRANSFORMS', 'METRICS', 'HOOKS')


def register(kind: str = 'MODELS', *, mmseg: bool = True, mmdet: bool = True) -> Callable[[T], T]:
    """Class decorator: register under the class name (which starts with ``OV``) into both libraries.

    Args:
        kind: registry name, one of MODELS, DATASETS, TRANSFORMS, METRICS, HOOKS.
        mmseg: register into mmseg's registry.
        mmdet: register into mmdet's registry.
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
            import mmdet.registry as r
            getattr(r, kind).register_module(force=True)(cls)
        return cls

    return deco
