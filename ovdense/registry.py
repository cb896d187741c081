"""Registration into the OpenMMLab registries.

Segmentation and shared modules register into mmseg's registries when their module is imported
(``custom_imports=dict(imports=['ovdense.models'])``); nothing there imports mmdet. The shared ones (backbones, the
text encoder, CLIPSelf, hooks, ...) also go into mmengine's root registries, which every OpenMMLab library's
registries fall back to, and the detection-only names are registered there on demand: a stock mmdet config builds
them by type name with the same ``custom_imports=dict(imports=['ovdense.models'])`` line, ``ovdense.detection``
(which imports mmdet) being imported only when one of them is built. Importing ``ovdense.detection`` registers the
detection modules into mmdet's registries directly.

mmseg's own models import mmdet too (its MaskFormer and Mask2Former heads subclass mmdet's, and fall back to a plain
module when mmdet is not installed): :func:`import_mmseg_models` imports them as if mmdet were absent, so that a
segmentation process does not hold mmdet's models, and restores those two heads when they are built or detection is
imported.
"""
from __future__ import annotations

import importlib
import importlib.abc
import sys
from typing import Callable, TypeVar

T = TypeVar('T', bound=type)

_KINDS = ('MODELS', 'DATASETS', 'TRANSFORMS', 'METRICS', 'HOOKS', 'VISUALIZERS', 'RUNNERS')
_SHARED: list[tuple[str, type]] = []  # (kind, class) of every module meant for mmdet's registries too
_MMDET = False  # set once ovdense.detection is imported


def _into_mmdet(kind: str, cls: type) -> None:
    import mmdet.registry as r
    getattr(r, kind).register_module(force=True)(cls)


def register(kind: str = 'MODELS', *, mmseg: bool = True, mmdet: bool = True) -> Callable[[T], T]:
    """Class decorator: register under the class name (which starts with ``OV``).

    Args:
        kind: registry name, one of MODELS, DATASETS, TRANSFORMS, METRICS, HOOKS, VISUALIZERS, RUNNERS.
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
            import mmengine.registry as root
            getattr(root, kind).register_module(force=True)(cls)  # found from mmdet's (and any library's) registry
            _SHARED.append((kind, cls))
            if _MMDET or not mmseg:  # detection-only modules live in modules that import mmdet anyway
                _into_mmdet(kind, cls)
        return cls

    return deco


# mmseg's heads that subclass mmdet's (mmseg 1.x): module under mmseg.models.decode_heads -> class
MMSEG_HEADS_FROM_MMDET = {'mask2former_head': 'Mask2FormerHead', 'maskformer_head': 'MaskFormerHead'}
_HEADS_DEFERRED = False  # True while mmseg's heads above are the fallbacks it defines without mmdet


class _WithoutMMDet(importlib.abc.MetaPathFinder):
    """An import finder that answers every mmdet module as not installed."""

    def find_spec(self, name: str, path=None, target=None):
        if name == 'mmdet' or name.startswith('mmdet.'):
            raise ModuleNotFoundError(f"No module named '{name}'", name=name)
        return None


def import_mmseg_models() -> None:
    """Import ``mmseg.models`` without importing mmdet (0.14 GB of memory less), when neither is imported yet.

    mmseg imports mmdet only for :data:`MMSEG_HEADS_FROM_MMDET`, and defines them without it when mmdet is not
    installed; this imports them that way, then registers builders in their place that re-import them with mmdet
    when a config builds one. Importing ``ovdense.detection`` re-imports them too. Only a class taken from
    ``mmseg.models`` by a Python import before that stays the fallback.
    """
    global _HEADS_DEFERRED
    if 'mmseg.models' in sys.modules or 'mmdet' in sys.modules:
        importlib.import_module('mmseg.models')
        return
    finder = _WithoutMMDet()
    sys.meta_path.insert(0, finder)
    try:
        importlib.import_module('mmseg.models')
    finally:
        sys.meta_path.remove(finder)
    from mmseg.registry import MODELS

    def on_demand(name: str) -> Callable:
        def build(*args, **kwargs):
            restore_mmseg_heads()
            return MODELS.get(name)(*args, **kwargs)
        build.__name__ = build.__qualname__ = name
        build.__doc__ = f"Re-imports mmseg's {name} with mmdet, then builds it."
        return build

    for name in MMSEG_HEADS_FROM_MMDET.values():
        MODELS.register_module(name=name, module=on_demand(name), force=True)
    _HEADS_DEFERRED = True


def restore_mmseg_heads() -> None:
    """Re-import the heads :func:`import_mmseg_models` deferred, now with mmdet: registry entries, the modules and
    the names ``mmseg.models`` and ``mmseg.models.decode_heads`` export."""
    global _HEADS_DEFERRED
    if not _HEADS_DEFERRED:
        return
    _HEADS_DEFERRED = False
    from mmseg.registry import MODELS
    for module, name in MMSEG_HEADS_FROM_MMDET.items():
        MODELS.module_dict.pop(name, None)  # the module registers its class again, without force
        mod = importlib.reload(sys.modules[f'mmseg.models.decode_heads.{module}'])
        for package in ('mmseg.models.decode_heads', 'mmseg.models'):
            if hasattr(sys.modules[package], name):
                setattr(sys.modules[package], name, getattr(mod, name))


def enable_mmdet() -> None:
    """Register every shared module into mmdet's registries, and the ones imported later as they come."""
    global _MMDET
    _MMDET = True
    restore_mmseg_heads()
    for kind, cls in _SHARED:
        _into_mmdet(kind, cls)


# the detection-only modules (their modules import mmdet), by registry: tests check it is what ovdense.detection
# registers
DETECTION_MODULES = {'MODELS': ('OVFViT', 'OVFViTRoIHead', 'OVTextBBoxHead'),
                     'DATASETS': ('OVCocoDataset', 'OVLVISV1Dataset'),
                     'METRICS': ('OVCocoMetric', 'OVLVISMetric')}


def register_detection_on_demand() -> None:
    """Register each of :data:`DETECTION_MODULES` into mmengine's root registry as a builder that imports
    ``ovdense.detection`` (registering the real class into mmdet's registries, which then take precedence) and builds
    the class: ``custom_imports=['ovdense.models']`` serves mmdet configs, and segmentation never imports mmdet."""
    import mmengine.registry as root

    def on_demand(kind: str, name: str) -> Callable:
        def build(*args, **kwargs):
            import mmdet.registry

            from . import detection  # noqa: F401
            return getattr(mmdet.registry, kind).get(name)(*args, **kwargs)
        build.__name__ = build.__qualname__ = name
        build.__doc__ = f'Imports ovdense.detection, then builds its {name}.'
        return build

    for kind, names in DETECTION_MODULES.items():
        registry = getattr(root, kind)
        for name in names:
            if name not in registry.module_dict:
                registry.register_module(name=name, module=on_demand(kind, name))
