"""Dense methods: how a CLIP ViT's patches are made to speak text, one registered component per file.

:class:`OVDenseMethod` is the interface (:mod:`.base` says what a method sees); the backbone
:class:`~ovdense.models.backbones.OVCLIPViT` runs the one named in its ``method=dict(type=...)``. Every module of
this package is imported here (a new method is a new file, nothing else), and its ``OV*`` classes exported.
"""
import importlib
import pkgutil

from .base import (DenseTokens, OVDenseMethod, attention_residual_ffn, build_method, clip_only_methods,
                   registered_methods)

__all__ = ['OVDenseMethod', 'DenseTokens', 'attention_residual_ffn', 'build_method', 'registered_methods',
           'clip_only_methods']

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.name != 'base':
        _module = importlib.import_module(f'{__name__}.{_info.name}')
        for _name in getattr(_module, '__all__', [n for n in vars(_module) if n.startswith('OV')]):
            globals()[_name] = getattr(_module, _name)
            __all__.append(_name)
