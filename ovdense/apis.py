"""The inference API of every ovdense model: ``init_model`` and ``inference_model``, and the shipped configs."""
from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any, Sequence, Union

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
    orientation = _header_check(path)
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
        img = np.repeat(img[:, :, None], 3, 2)
    elif img.shape[2] == 4:
        img = img[:, :, 2::-1]
    elif img.shape[2] == 3:
        img = img[:, :, ::-1]
    else:
        raise ImageReadError(f'cannot read image {path}: {img.shape[2]} channels')
    return np.ascontiguousarray(_EXIF_TRANSPOSE.get(orientation, lambda a: a)(img))


# EXIF orientation (tag 0x0112) -> the array operation that shows the image upright (PIL's ImageOps.exif_transpose)
_EXIF_TRANSPOSE = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
                   5: lambda a: a.transpose(1, 0, 2), 6: lambda a: np.rot90(a, -1),
                   7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1], 8: lambda a: np.rot90(a, 1)}


def _header_check(path: str) -> int:
    """The image's EXIF orientation (1: upright), after checking its size from the header, before any decoding (a
    100000 x 100000 PNG of a few kB is refused here, not after allocating it). Files PIL cannot identify are left to
    OpenCV's decoder."""
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as im:
            width, height = im.size
            orientation = int(im.getexif().get(0x0112, 1) or 1)
    except Image.DecompressionBombError as e:
        raise ImageReadError(f'image {path} is too large ({e})') from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return 1
    check_image_size(height, width, f'image {path}')
    return orientation


def check_image_size(height: int, width: int, what: str = 'image') -> None:
    """Raise :class:`ImageReadError` naming the limit when an image has more than ``MAX_PIXELS`` pixels."""
    if height * width > MAX_PIXELS:
        raise ImageReadError(f'{what} is too large ({width}x{height} > {MAX_PIXELS} pixels)')


FAMILIES = ('OVSegmentor', 'OVTextSegmentor', 'OVDenseCLIP', 'OVCATSeg', 'OVFViT')


def clip_holder(model_cfg: Any) -> Any:
    """The config dict that names the CLIP (``backbone.clip``, or ``clip`` for CLIPSelf)."""
    return model_cfg.backbone if 'backbone' in model_cfg and 'clip' in model_cfg.backbone else model_cfg


def init_model(config: str | os.PathLike | Any, checkpoint: str | os.PathLike | None = None, *,
               clip: dict | None = None, device: str = 'cpu', cfg_options: dict | None = None,
               allow_untrained: bool = False) -> torch.nn.Module:
    """Build any ovdense model from its config, load its CLIP weights, then a trained checkpoint.

    Args:
        config: a config file (or an mmengine ``Config``).
        checkpoint: trained weights (an mmengine checkpoint, read with ``weights_only=True``). Models with
            trained parts (text-seg, DenseCLIP, F-ViT) need one.
        clip: replace the config's CLIP (``build_clip`` kwargs), e.g. ``dict(model_name='ViT-B-16',
            checkpoint='ViT-B-16.pt')``.
        device: where to run.
        cfg_options: extra config overrides (``{'model.slide_crop': 0}``).
        allow_untrained: build a model with trained parts without a checkpoint (to try the pipeline only:
            its predictions are meaningless).

    Returns:
        the model in eval mode, with ``model.cfg`` set.

    Raises:
        FileNotFoundError: the config or checkpoint does not exist.
        ValueError: a model with trained parts and no checkpoint.
        CheckpointError: the checkpoint is not a weights-only state dict of this model.
    """
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmengine.runner import load_checkpoint
    from mmengine.utils import import_modules_from_strings

    from .fileio import weights_only_checkpoints
    from .clip import CheckpointError
    from .clip.formats import check_values
    from .hooks import apply_base_classes

    if isinstance(config, (str, os.PathLike)):
        if not Path(config).is_file():
            raise FileNotFoundError(f'config not found: {config}')
        cfg = Config.fromfile(str(config))
    else:
        cfg = config.copy()
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if clip is not None:
        clip_holder(cfg.model).clip = clip
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise FileNotFoundError(f'checkpoint not found: {checkpoint}')
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    scope = cfg.get('default_scope', 'mmseg')
    registry = importlib.import_module(f'{scope}.registry').MODELS
    with DefaultScope.overwrite_default_scope(scope):
        model = registry.build(cfg.model)
    if checkpoint is None and not getattr(model, 'training_free', False) and not allow_untrained:
        raise ValueError(f'{type(model).__name__} has trained parts and no checkpoint was given: pass the trained '
                         'weights (checkpoint=..., --load-from) or allow_untrained=True to try the pipeline')
    model.init_weights()
    if checkpoint is not None:
        try:
            with weights_only_checkpoints():  # a training checkpoint's message hub too, and nothing unsafe
                loaded = load_checkpoint(model, str(checkpoint), map_location='cpu', strict=True, logger='silent')
        except Exception as e:  # noqa: BLE001 - torch / mmengine raise many types for a wrong file
            lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
            first = ' / '.join(lines[:3]) if lines else type(e).__name__
            raise CheckpointError(f'checkpoint {checkpoint} cannot be loaded into {type(model).__name__} '
                                  f'(config {config if isinstance(config, (str, os.PathLike)) else "given"}): '
                                  f'{first[:500]}') from None
        state = loaded.get('state_dict', loaded) if isinstance(loaded, dict) else {}
        check_values(model, {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}, checkpoint)
        # the Runner saves its training data's metainfo: a detector's base classes (OV-LVIS: from the data),
        # by name when the config's vocabulary is another one
        apply_base_classes(model, (loaded.get('meta') or {}).get('dataset_meta') or {}, strict=False)
    model.cfg = cfg
    return model.to(device).eval()


def _pipeline(cfg: Any, scope: str) -> Any:
    """The pipeline the Runner tests with (``test_dataloader.dataset.pipeline``, else ``test_pipeline``), for
    in-memory images."""
    from mmengine.dataset import Compose
    from mmengine.registry import DefaultScope
    loader = cfg.get('test_dataloader') or {}
    steps = loader.get('dataset', {}).get('pipeline') or cfg.get('test_pipeline')
    if not steps:
        raise ValueError('the config has no test pipeline (test_dataloader.dataset.pipeline or test_pipeline)')
    steps = [dict(t) for t in steps if t['type'].split('.')[-1] not in ('LoadImageFromFile', 'LoadAnnotations')]
    for t in steps:
        if t['type'].endswith('PackDetInputs'):  # no annotations at inference
            t['meta_keys'] = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')
    with DefaultScope.overwrite_default_scope(scope):
        return Compose([dict(type=f'{scope}.LoadImageFromNDArray'), *steps])


ImageInput = Union[str, os.PathLike, np.ndarray]


@torch.no_grad()
def inference_model(model: torch.nn.Module, images: ImageInput | Sequence[ImageInput], *,
                    vocabulary: Any = None, progress: ProgressFn | None = None) -> Any:
    """Segment or detect images with a model from :func:`init_model`, in the classes of ``vocabulary``.

    Images go one at a time through the config's test pipeline (memory stays bounded whatever their
    size and number). Every family: training-free segmentors, text-seg, DenseCLIP (``SegDataSample``:
    ``pred_sem_seg`` (1, H, W) at the image's size, ``seg_logits`` when the model gives probabilities), and
    F-ViT (``DetDataSample``: ``pred_instances`` with ``bboxes`` (N, 4) xyxy in image pixels, ``scores``,
    ``labels``, and ``masks`` with a mask head). ``metainfo['classes']`` names the labels.

    Args:
        model: from :func:`init_model` (``model.cfg`` set).
        images: a path, an (H, W, 3) uint8 BGR array (as ``cv2.imread`` / mmcv give), or a list of them.
        vocabulary: the classes for this call (default: the model's), any form ``Vocabulary.coerce`` takes;
            an explicit empty one is an error.
        progress: gets ``(stage, done, total)``: ``'images'`` after each image, and from training-free
            segmentors ``'text'``, ``'windows'``, ``'tiles'``.

    Returns:
        one data sample for one image, else a list in the order of ``images``.
    """
    cfg = getattr(model, 'cfg', None)
    if cfg is None:
        raise ValueError('the model has no cfg: build it with ovdense.apis.init_model')
    if type(model).__name__ not in FAMILIES:
        raise ValueError(f'inference_model runs segmentors and detectors; {type(model).__name__} is none of '
                         f'{list(FAMILIES)}')
    single = isinstance(images, (str, os.PathLike, np.ndarray, torch.Tensor))
    items = [images] if single else list(images)
    for i, item in enumerate(items):  # before any work: every input is a path or an image array
        if not isinstance(item, (str, os.PathLike, np.ndarray)):
            raise ImageReadError(f'image {i}: expected a path or an (H, W, 3) uint8 BGR array, got '
                                 f'{type(item).__name__}' + (' (normalised tensors go to model.predict)'
                                                             if isinstance(item, torch.Tensor) else ''))
    pipeline = _pipeline(cfg, cfg.get('default_scope', 'mmseg'))
    vocab = Vocabulary.coerce(vocabulary) if vocabulary is not None else None
    model.ready()  # built without init_model: the weights its config names; input statistics checked
    out = []
    names = model.label_names(vocab if vocab is not None else model.vocabulary)
    # the vocabulary travels with each image (its metainfo, as mmdet's grounding models carry 'text'): the model
    # is not changed, so concurrent calls with other vocabularies do not meet
    for i, item in enumerate(items):
        if isinstance(item, np.ndarray):
            if item.ndim != 3 or item.shape[2] != 3 or item.dtype != np.uint8 or 0 in item.shape:
                raise ImageReadError(f'image {i}: expected a non-empty (H, W, 3) uint8 BGR array, got {item.dtype} '
                                     f'{tuple(item.shape)}')
            check_image_size(item.shape[0], item.shape[1], f'image {i}')
            img, path = np.ascontiguousarray(item), None
        else:
            img, path = np.ascontiguousarray(read_image(item)[:, :, ::-1]), os.fspath(item)
        data = pipeline(dict(img=img, img_id=i, img_path=path))
        batch = model.data_preprocessor({k: [v] for k, v in data.items()}, False)
        if vocab is not None:
            for s in batch['data_samples']:
                s.set_metainfo(dict(vocabulary=vocab))
        stages = dict(progress=progress) if progress is not None and getattr(model, 'training_free', False) else {}
        sample = model.predict(batch['inputs'], batch['data_samples'], **stages)[0]
        sample.set_metainfo(dict(classes=names, img_path=path))
        out.append(sample)
        if progress is not None:
            progress('images', i + 1, len(items))
    return out[0] if single else out


def config_root() -> Path:
    """The folder of the shipped configs: ``ovdense/.mim/configs`` (a copy in an installed package, a
    link to the checkout's ``configs`` in an editable one, as mmdet / mmseg ship theirs)."""
    root = Path(__file__).resolve().parent / '.mim' / 'configs'
    if not root.is_dir():
        raise FileNotFoundError(f'no shipped configs at {root}: reinstall ovdense (pip install .)')
    return root


def list_configs(pattern: str = '*') -> list[str]:
    """Names of the shipped configs (``'clearclip/clearclip_vit-b16_voc21-448'``) matching a glob pattern."""
    root = config_root()
    return sorted(str(p.relative_to(root).with_suffix('')) for p in root.rglob('*.py')
                  if not p.relative_to(root).parts[0].startswith('_') and p.match(f'{pattern}.py'))


def find_config(name: str, dataset: str | None = None) -> Path:
    """A shipped config file: by name (``'clearclip_vit-b16_voc21-448'``, with or without its folder), or a
    method's protocol on a dataset (``find_config('clearclip', 'context59')``)."""
    root = config_root()
    if dataset is None:
        found = [p for p in root.rglob(f'{Path(name).name}.py') if not p.relative_to(root).parts[0].startswith('_')]
    else:
        found = sorted((root / name).glob(f'{name}_vit-b16_{dataset}-*.py'))
    if not found:
        methods = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith('_'))
        what = f"'{name}'" + (f" on '{dataset}'" if dataset else '')
        raise ValueError(f'no shipped config for {what}; methods: {methods} (list_configs() lists them all)')
    return found[0]


def _zoo() -> dict[str, dict]:
    """The model zoo: every model of the shipped metafiles (``configs/<method>/metafile.yml``, as mmpretrain's), by
    name, with its collection (paper, code, where the published numbers come from)."""
    import yaml
    root, models = config_root(), {}
    for meta in sorted(root.glob('*/metafile.yml')):
        data = yaml.safe_load(meta.read_text())
        collections = {c['Name']: c for c in data.get('Collections', [])}
        for m in data.get('Models', []):
            models[m['Name']] = dict(m, Collection=collections.get(m.get('In Collection'), {}))
    return models


def list_models(pattern: str = '*') -> list[str]:
    """Names of the zoo's models (configs with published results to expect, see :func:`model_info`) matching a glob
    pattern, as mmpretrain's ``list_models``."""
    import fnmatch
    return sorted(n for n in _zoo() if fnmatch.fnmatch(n, pattern))


def model_info(name: str) -> dict:
    """A zoo model's metafile entry: ``Config``, ``Metadata`` (the CLIP weights to use, training), ``Results`` (the
    reference's published numbers) and its ``Collection`` (paper, code, the source of the numbers).

    Raises:
        ValueError: an unknown name, listing the zoo.
    """
    zoo = _zoo()
    if name not in zoo:
        raise ValueError(f"'{name}' is not in the model zoo; valid: {sorted(zoo)}")
    return zoo[name]


def get_model(name: str, checkpoint: str | os.PathLike | None = None, **kwargs: Any) -> torch.nn.Module:
    """:func:`init_model` of a zoo model by name (``get_model('sclip_vit-b16_voc21-336')``), as mmpretrain's
    ``get_model``; ``kwargs`` go to :func:`init_model` (``clip=``, ``device=``, ``cfg_options=``)."""
    config = model_info(name)['Config']
    return init_model(config_root() / Path(config).relative_to('configs'), checkpoint, **kwargs)
