"""Prompt templates by name (OpenAI's 80, the 7 simple ones, MaskCLIP's 85)."""
from __future__ import annotations

import functools


_EXTRA_SCENE_TEMPLATES = ('there is a {} in the scene.', 'there is the {} in the scene.',
                          'this is a {} in the scene.', 'this is the {} in the scene.',
                          'this is one {} in the scene.')


@functools.lru_cache(maxsize=None)  # a pure function of the name, asked for on every text-encoder call
def prompt_templates(name: str) -> tuple[str, ...]:
    """Prompt template sets, each template a string with ``{}`` for the class name.

    ``'openai'``: the 80 OpenAI ImageNet templates (open_clip's ``OPENAI_IMAGENET_TEMPLATES``, the
    order SCLIP/NACLIP/ClearCLIP use); ``'simple'``: open_clip's 7 ``SIMPLE_IMAGENET_TEMPLATES``;
    ``'maskclip'``: the 80 plus MaskCLIP's 5 scene templates (85); ``'none'``: the bare name.
    """
    from open_clip import zero_shot_metadata as z
    sets = {
        'openai': tuple(t('{}') for t in z.OPENAI_IMAGENET_TEMPLATES),
        'simple': tuple(t('{}') for t in z.SIMPLE_IMAGENET_TEMPLATES),
        'none': ('{}',),
    }
    sets['maskclip'] = sets['openai'] + _EXTRA_SCENE_TEMPLATES
    if name not in sets:
        raise ValueError(f"unknown template set '{name}'; valid: {sorted(sets)}")
    return sets[name]
