"""High-level inference: build a model from a config and segment images with any vocabulary."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .progress import ProgressFn
from .vocabulary import Vocabulary

MAX_PIXELS = 100_000_000


class ImageReadError(ValueError):
    """An input file is not a readable image."""


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image as (H, W, 3) uint8 RGB: 8/16-bit, gray, RGB, RGBA (alpha dropped).

    Raises:
        ImageReadError: missing, unreadable or corrupt file, or an unsupported layout.
    """
    import cv2
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ImageReadError(f'image not found: {path}')
    buf = np.fromfile(path, dtype=np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if buf.size else None
    if img is None:
        raise ImageReadError(f'cannot read image {path}: not an image or corrupt')
    if img.dtype == np.uint16:
        img = (img.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise ImageReadError(f'cannot read image {path}: unsupported pixel type {img.dtype}')
    check_image_size(img.shape[0], img.shape[1], f'image {path}')
    if img.ndim == 2:
        return np.ascontiguousarray(np.repeat(img[:, :, None], 3, 2))
    if img.shape[2] == 4:
        img = img[:, :, :3]
    if img.shape[2] != 3:
        raise ImageReadError(f'cannot read image {path}: {img.shape[2]} channels')
    return np.ascontiguousarray(img[:, :, ::-1])


def init_segmentor(config: str | os.PathLike, *, clip: dict | None = None, vocabulary: Any = None,
                   device: str = 'cpu', cfg_options: dict | None = None) -> tuple[torch.nn.Module, Any]:
    """Build an ovdense segmentor from a config and load its CLIP weights.

    Args:
        config: config file path.
        clip: replace ``model.backbone.clip`` (``build_clip`` kwargs), e.g. a local checkpoint.
        vocabulary: replace the config's vocabulary.
        device: where to run.
        cfg_options: extra config overrides.

    Returns:
        (model in eval mode, the config).
    """
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    cfg = Config.fromfile(str(config))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if clip is not None:
        cfg.model.backbone.clip = clip
    if vocabulary is not None:
        cfg.model.vocabulary = None
    init_default_scope('mmseg')
    model = MODELS.build(cfg.model)
    if vocabulary is not None:
        model.set_vocabulary(vocabulary)
    model.init_weights()
    return model.to(device).eval(), cfg


def check_image_size(height: int, width: int, what: str = 'image') -> None:
    """Raise :class:`ImageReadError` naming the limit when an image has more than ``MAX_PIXELS`` pixels."""
    if height * width > MAX_PIXELS:
        raise ImageReadError(f'{what} is too large ({width}x{height} > {MAX_PIXELS} pixels)')


@torch.no_grad()
def segment(model: torch.nn.Module, cfg: Any, image_rgb: np.ndarray, *,
            vocabulary: Vocabulary | None = None, return_probs: bool = False,
            progress: ProgressFn | None = None) -> dict[str, torch.Tensor]:
    """Segment one RGB image with the config's test pipeline.

    Memory stays within the model's ``memory_budget`` whatever the image size and vocabulary; only
    the label map (and the probabilities when asked for) is materialised at the image's size.
    ``progress(stage, done, total)`` is told of text encoding, windows and tiles.

    Returns:
        ``label`` (H, W) int64 at the image's size, and ``probs`` (C, H, W) class probabilities
        if ``return_probs`` (every ``probs_stride``-th pixel when the model has one).
    """
    from mmengine.dataset import Compose
    check_image_size(*image_rgb.shape[:2])
    steps = [t for t in cfg.test_pipeline if t['type'] not in ('LoadImageFromFile', 'LoadAnnotations')]
    pipeline = Compose([dict(type='LoadImageFromNDArray'), *steps])
    data = pipeline(dict(img=np.ascontiguousarray(image_rgb[:, :, ::-1]), img_path=None))  # BGR, as cv2 loads
    batch = model.data_preprocessor({k: [v] for k, v in data.items()}, False)
    res = model.inference(batch['inputs'], [batch['data_samples'][0].metainfo], vocabulary=vocabulary,
                          return_probs=return_probs, progress=progress)[0]
    out = dict(label=res['label'][0])
    if return_probs:
        out['probs'] = res['probs']
    return out


def init_detector(config: str | os.PathLike, *, checkpoint: str | os.PathLike | None = None,
                  vocabulary: Any = None, device: str = 'cpu',
                  cfg_options: dict | None = None) -> tuple[torch.nn.Module, Any]:
    """Build an ovdense open-vocabulary detector (:class:`OVFViT` or a detector with an
    :class:`OVTextBBoxHead`), load its CLIP weights, then a trained mmengine ``checkpoint``.

    Args:
        config: config file path.
        checkpoint: a trained detector (mmengine checkpoint, read with ``weights_only=True``); None keeps
            the freshly initialised head (only useful to try the pipeline).
        vocabulary: the classes to detect (replaces the config's).
        device: where to run.
        cfg_options: extra config overrides.

    Returns:
        (model in eval mode, the config).
    """
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint
    from mmdet.registry import MODELS

    from . import fileio  # noqa: F401  (weights-only checkpoint loading)

    cfg = Config.fromfile(str(config))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope('mmdet')
    model = MODELS.build(cfg.model)
    model.init_weights()
    if checkpoint is not None:
        if not Path(checkpoint).is_file():
            raise FileNotFoundError(f'detector checkpoint not found: {checkpoint}')
        load_checkpoint(model, str(checkpoint), map_location='cpu')
    head = model.roi_head.bbox_head
    if not hasattr(head, 'set_vocabulary'):
        raise ValueError(f'{config}: the box head {type(head).__name__} is not open-vocabulary (OVTextBBoxHead)')
    if vocabulary is not None:
        set_detector_vocabulary(model, vocabulary)
    model = model.to(device).eval()
    if hasattr(model, '_prepare_text'):
        model._prepare_text()
    return model, cfg


def set_detector_vocabulary(model: torch.nn.Module, vocabulary: Any) -> None:
    """Change a detector's classes: :class:`OVFViT` (box and mask heads) or any detector whose box
    head is an :class:`OVTextBBoxHead`. The text embeddings are (re)computed, from the head's cache
    when the vocabulary was seen before, at the next prediction."""
    vocab = Vocabulary.coerce(vocabulary)
    if hasattr(model, 'set_vocabulary'):
        model.set_vocabulary(vocab)
    else:
        model.roi_head.bbox_head.set_vocabulary(vocab)


@torch.no_grad()
def detect(model: torch.nn.Module, cfg: Any, image_rgb: np.ndarray, *, vocabulary: Any = None) -> Any:
    """Detect in one RGB image with the config's test pipeline: an ``InstanceData`` with ``bboxes``
    (N, 4) xyxy in image pixels, ``scores`` (N,), ``labels`` (N,) indices into the head's vocabulary
    (``vocabulary`` when given: it replaces the detector's from this call on)."""
    from mmengine.dataset import Compose
    check_image_size(*image_rgb.shape[:2])
    if vocabulary is not None:
        set_detector_vocabulary(model, vocabulary)
    steps = [t for t in cfg.test_dataloader.dataset.pipeline
             if t['type'] not in ('LoadImageFromFile', 'LoadAnnotations')]
    for t in steps:
        if t['type'] == 'PackDetInputs':
            t['meta_keys'] = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')
    pipeline = Compose([dict(type='mmdet.LoadImageFromNDArray'), *steps])
    data = pipeline(dict(img=np.ascontiguousarray(image_rgb[:, :, ::-1]), img_id=0, img_path=None))
    batch = model.data_preprocessor({k: [v] for k, v in data.items()}, False)
    return model.predict(batch['inputs'], batch['data_samples'])[0].pred_instances


def find_config(method: str, dataset: str = 'context59', root: str | os.PathLike | None = None) -> Path:
    """The shipped config of a method's protocol on a dataset (e.g. 'clearclip', 'context59')."""
    root = Path(root) if root else Path(__file__).resolve().parent.parent / 'configs'
    found = sorted((root / method).glob(f'{method}_vit-b16_{dataset}-*.py'))
    if not found:
        methods = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith('_'))
        raise ValueError(f"no config for method '{method}' on '{dataset}' under {root}; methods: {methods}")
    return found[0]
