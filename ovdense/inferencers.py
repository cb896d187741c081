"""mmseg's inferencer with the classes as an input, as mmdet's ``DetInferencer(texts=...)`` takes them.

Stock ``MMSegInferencer`` runs every ovdense segmentor (the weights its config names are loaded before the first
forward; each prediction is drawn with the names of its vocabulary by :class:`~ovdense.visualizer.OVSegLocalVisualizer`)
but has no way to pass classes to the model: its ``classes=`` only renames the legend. :class:`OVSegInferencer` takes
``classes=`` as the model's vocabulary and ``texts=`` per call, and reads training checkpoints weights-only
(:func:`~ovdense.fileio.weights_only_checkpoints`: stock inferencers need that scope on torch >= 2.6)."""
from __future__ import annotations

from typing import Any, Sequence

from .registry import import_mmseg_models

import_mmseg_models()  # before mmseg.apis imports mmseg's models: without mmdet's (see ovdense.registry)

from mmseg.apis import MMSegInferencer  # noqa: E402

from .fileio import weights_only_checkpoints  # noqa: E402
from .models.text.text_encoder import grounding_names  # noqa: E402
from .vocabulary import Vocabulary  # noqa: E402


class OVSegInferencer(MMSegInferencer):
    """``MMSegInferencer`` whose classes reach the text side.

    Args:
        model: config path or name, as ``MMSegInferencer``.
        weights: a checkpoint (trained models; training-free ones need none).
        classes: the model's vocabulary (a list of names, ``'cat . dog'`` or any form ``Vocabulary.coerce``
            takes); None keeps the config's.
        **kwargs: ``MMSegInferencer`` arguments (``device``, ``palette``, ``dataset_name``, ``scope``).

    Call with ``texts=`` (same forms) to segment in other classes for that call only.
    """

    forward_kwargs = MMSegInferencer.forward_kwargs | {'texts'}

    def __init__(self, model: Any, weights: str | None = None, classes: Any = None, **kwargs: Any) -> None:
        with weights_only_checkpoints():
            super().__init__(model, weights, **kwargs)
        if classes is not None:
            self.model.set_vocabulary(_coerce(classes))

    def forward(self, inputs: dict, texts: str | Sequence[str] | None = None, **kwargs: Any) -> Any:
        if texts is not None:
            vocabulary = _coerce(texts)
            for sample in inputs['data_samples']:
                sample.set_metainfo(dict(vocabulary=vocabulary))
        return super().forward(inputs, **kwargs)


def _coerce(value: Any) -> Vocabulary:
    return Vocabulary.coerce(grounding_names(value) if isinstance(value, str) else value)
