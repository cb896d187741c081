"""Registration into the OpenMMLab registries.

Segmentation and shared modules register into mmseg's registries when their module is imported
(``custom_imports=dict(imports=['ovdense.models'])``); nothing there imports mmdet. The shared ones (backbones, the
text encoder, CLIPSelf, hooks, ...) also go into mmengine's root registries, which every OpenMMLab library's
registries fall back to, and the detection-only names are registered there on demand: a stock mmdet config builds
them by type name with the same ``custom_imports=dict(imports=['ovdense.models'])`` line, ``ovdense.detection``
(which imports mmdet) being imported only when one of them is built. Importing ``ovdense.detection`` registers the
detection modules into mmdet's registries directly.
"""
from __future__ import annotations

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


def enable_mmdet() -> None:
    """Register every shared module into mmdet's registries, and the ones imported later as they come."""
    global _MMDET
    _MMDET = True
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
