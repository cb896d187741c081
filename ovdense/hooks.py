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
