"""mmengine's Runner, reading its own training checkpoints weights-only (``load_from``, ``--resume``) and keeping
freed memory for reuse on the CPU (:func:`~ovdense.runtime.keep_freed_memory`).

Configs select it with ``runner_type = 'OVRunner'`` (ovdense's do; mmseg's and mmdet's ``tools/train.py`` /
``tools/test.py`` build ``runner_type`` from the registry), and ovdense's tools build it for any config without one.
"""
from __future__ import annotations

from typing import Any

from mmengine.config import Config
from mmengine.runner import Runner

from .fileio import weights_only_checkpoints
from .registry import register
from .runtime import keep_freed_memory

__all__ = ['OVRunner', 'build_runner']


@register('RUNNERS')
class OVRunner(Runner):
    """:class:`mmengine.runner.Runner` whose checkpoint loading runs in
    :func:`~ovdense.fileio.weights_only_checkpoints`: on torch >= 2.6 mmengine's own loader refuses the message hub
    of a training checkpoint, and unpickling it without ``weights_only`` could run arbitrary code.

    Its environment setup also keeps freed memory for reuse (:func:`~ovdense.runtime.keep_freed_memory`: a CPU
    forward otherwise page-faults its activations in afresh on every call); ``env_cfg = dict(keep_freed_memory=False)``
    leaves the C library's defaults, an int sets the largest block kept (bytes)."""

    def setup_env(self, env_cfg: dict) -> None:
        super().setup_env(env_cfg)
        keep = env_cfg.get('keep_freed_memory', True)
        if keep is True:
            keep_freed_memory()
        elif keep:
            keep_freed_memory(int(keep))

    def load_checkpoint(self, filename: str, *args: Any, **kwargs: Any) -> dict:
        with weights_only_checkpoints():
            return super().load_checkpoint(filename, *args, **kwargs)

    def resume(self, filename: str, *args: Any, **kwargs: Any) -> None:
        with weights_only_checkpoints():
            super().resume(filename, *args, **kwargs)


def build_runner(cfg: Config) -> Runner:
    """The config's ``runner_type`` (from mmengine's registry) if it names one, else :class:`OVRunner`."""
    if cfg.get('runner_type'):
        from mmengine.registry import RUNNERS
        return RUNNERS.build(cfg)
    return OVRunner.from_cfg(cfg)
