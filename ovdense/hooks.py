"""Runner hooks."""
from __future__ import annotations

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from .registry import register


@register('HOOKS')
class OVInitWeightsHook(Hook):
    """Load the CLIP weights of a model before a test/val run.

    mmengine's Runner calls ``init_weights`` before training only; training-free models need
    their CLIP weights at test time too. Runs before ``load_from``, so a trained checkpoint still
    overrides them. ``init_weights`` of ovdense modules loads once, so training is unaffected.
    """
    priority = 'VERY_HIGH'

    def before_run(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        model.init_weights()


@register('HOOKS')
class OVExportCLIPHook(Hook):
    """After training (and every ``interval`` iterations), export the trained CLIP as open_clip
    ``NAME.json`` + ``NAME.safetensors`` into the work dir, loadable by ``build_clip(config_file=...,
    checkpoint=...)`` with no unpickling.

    Args:
        name: file stem.
        interval: also export every this many iterations (0: only at the end).
    """
    priority = 'LOW'

    def __init__(self, name: str, interval: int = 0) -> None:
        self.name = name
        self.interval = interval

    def _export(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if runner.rank == 0:
            model.export(runner.work_dir, self.name)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self.interval and self.every_n_train_iters(runner, self.interval):
            self._export(runner)

    def after_train(self, runner) -> None:
        self._export(runner)
