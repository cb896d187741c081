"""mmengine's Runner, reading its own training checkpoints weights-only (``load_from``, ``--resume``).

Configs select it with ``runner_type = 'OVRunner'`` (ovdense's do; mmseg's and mmdet's ``tools/train.py`` /
``tools/test.py`` build ``runner_type`` from the registry), and ovdense's tools build it for any config without one.
"""
from __future__ import annotations

from typing import Any

from mmengine.config import Config
from mmengine.runner import Runner

from .fileio import weights_only_checkpoints
from .registry import register

__all__ = ['OVRunner', 'build_runner']


@register('RUNNERS')
class OVRunner(Runner):
    """:class:`mmengine.runner.Runner` whose checkpoint loading runs in
    :func:`~ovdense.fileio.weights_only_checkpoints`: on torch >= 2.6 mmengine's own loader refuses the message hub
    of a training checkpoint, and unpickling it without ``weights_only`` could run arbitrary code."""

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
