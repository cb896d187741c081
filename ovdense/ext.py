"""ovdense's compiled CPU kernels (``ovdense._ext``, built from ``ovdense/csrc`` at install): whether they are there,
said where they are missing."""
from __future__ import annotations

import warnings

try:
    from ovdense import _ext  # registers torch.ops.ovdense.*
except ImportError as e:  # a checkout used without `pip install -e .`: said where a kernel would run
    _ext, _EXT_ERROR = None, e


def built(fallback: str) -> bool:
    """Whether ``ovdense._ext`` is built; when not, a warning naming the import error, what runs instead
    (``fallback``) and how to build it."""
    if _ext is None:
        warnings.warn(f'ovdense._ext is not built ({_EXT_ERROR}): {fallback}; `pip install --no-build-isolation -e .` '
                      'in the checkout builds it')
        return False
    return True
