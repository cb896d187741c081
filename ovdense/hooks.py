"""Runner hooks."""
from __future__ import annotations

import torch
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
        dtype: cast floating-point weights to this dtype name (``'float16'``: half the file size).
        weights_format: ``'open_clip'`` or ``'eva_clip'`` key names (default: those of the CLIP file loaded).
    """
    priority = 'LOW'

    def __init__(self, name: str, interval: int = 0, *, dtype: str | None = None,
                 weights_format: str | None = None) -> None:
        if dtype is not None and dtype not in ('float16', 'bfloat16', 'float32'):
            raise ValueError(f"dtype must be None, 'float16', 'bfloat16' or 'float32', got {dtype!r}")
        self.name = name
        self.interval = interval
        self.dtype = None if dtype is None else getattr(torch, dtype)
        self.weights_format = weights_format

    def _export(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if runner.rank == 0:
            fmt = {} if self.weights_format is None else dict(weights_format=self.weights_format)  # CLIPSelf only
            model.export(runner.work_dir, self.name, dtype=self.dtype, **fmt)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self.interval and self.every_n_train_iters(runner, self.interval):
            self._export(runner)

    def after_train(self, runner) -> None:
        self._export(runner)


@register('HOOKS', mmdet=False)
class OVSyntheticZeroShotHook(Hook):
    """Every ``interval`` training iterations, measure the CLIP being trained on held-out scenes of
    the synthetic world (image-level zero-shot top-1 over the object classes, image->text R@1) and
    log them with the losses, so a pretraining log shows what is learnt and when.

    Args:
        interval: iterations between measurements.
        num_images: held-out single-object scenes classified.
    """
    priority = 'LOW'

    def __init__(self, interval: int = 1000, num_images: int = 600) -> None:
        self.interval = interval
        self.num_images = num_images

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if not self.every_n_train_iters(runner, self.interval) or runner.rank != 0:
            return
        from .testing.synthetic_eval import image_zero_shot
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        size = model.model_cfg['vision_cfg']['image_size']
        res = image_zero_shot(model.clip, num_images=self.num_images, image_size=size)
        model.train()
        runner.logger.info(f"iter {runner.iter + 1}: zero-shot top-1 {100 * res['top1']:.1f}% over the object "
                           f"classes (1.5x box crops {100 * res['crop_top1']:.1f}%, square {100 * res['crop_square_top1']:.1f}%), "
                           f"image->text R@1 "
                           f"{100 * res['retrieval_r1']:.1f}%")
        for key in ('top1', 'crop_top1', 'crop_square_top1', 'retrieval_r1'):
            runner.message_hub.update_scalar(f'val/synthetic_{key}', res[key])


@register('HOOKS', mmdet=False)
class OVZoomCurriculumHook(Hook):
    """Switch the zoom augmentation of an :class:`~ovdense.datasets.OVSyntheticCaptionDataset` on from
    iteration ``begin`` (a curriculum: forms first at the rendering scale, then other scales). Zooming
    from the first iteration slows the learning of forms badly (measured: zero-shot top-1 14.8% instead of
    34.0% after 1000 iterations). Applies on resume too.

    Args:
        begin: first iteration (0-based) trained with zoom.
        zoom: ``(min, max)`` zoom range.
        zoom_prob: probability of zooming an eligible image.
    """
    priority = 'NORMAL'

    def __init__(self, begin: int, zoom: tuple[float, float], zoom_prob: float = 0.5) -> None:
        if begin < 0:
            raise ValueError(f'begin must be >= 0, got {begin}')
        self.begin, self.zoom, self.zoom_prob = begin, tuple(zoom), zoom_prob
        self._done = False

    def _switch(self, runner) -> None:
        loader = runner.train_loop.dataloader
        dataset = loader.dataset
        if not hasattr(dataset, 'set_zoom'):
            raise TypeError(f'{type(dataset).__name__} has no zoom augmentation (set_zoom)')
        dataset.set_zoom(self.zoom, self.zoom_prob)
        if loader.num_workers > 0:  # workers hold copies of the dataset (and prefetched batches): restart them
            runner.train_loop.dataloader_iterator._iterator = iter(loader)
        runner.logger.info(f'from iter {self.begin}: zoom {self.zoom} with probability {self.zoom_prob}')
        self._done = True

    def before_train(self, runner) -> None:  # also a resume past ``begin``
        if runner.iter >= self.begin:
            self._switch(runner)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if not self._done and runner.iter + 1 >= self.begin:  # the next batch is drawn with zoom
            self._switch(runner)


def apply_base_classes(model: torch.nn.Module, metainfo: dict, *, strict: bool = True) -> None:
    """Give the detector's :class:`~ovdense.models.OVTextBBoxHead` the ``base_classes`` of a dataset's
    ``metainfo`` (nothing without them, or for models without such a head), matched to the detector's
    vocabulary by label index, so the head's display names may differ from the dataset's (``aerosol can`` /
    ``aerosol_can``). A vocabulary of another size: an error (``strict``), else matched by name (case, ``_``
    and spaces aside)."""
    model = model.module if is_model_wrapper(model) else model
    head = getattr(getattr(model, 'roi_head', None), 'bbox_head', None)
    if head is None or not hasattr(head, 'base_classes') or 'base_classes' not in metainfo:
        return
    classes, names = list(metainfo['classes']), model.vocabulary.names
    if len(classes) == len(names):
        base = set(metainfo['base_classes'])
        head.base_classes = tuple(n for n, c in zip(names, classes) if c in base)
    elif strict:
        raise ValueError(f'the dataset has {len(classes)} classes, the detector vocabulary {len(names)}')
    else:
        def key(name: str) -> str:
            return ' '.join(name.lower().replace('_', ' ').split())
        base = {key(c) for c in metainfo['base_classes']}
        head.base_classes = tuple(n for n in names if key(n) in base)


@register('HOOKS')
class OVBaseClassesFromDatasetHook(Hook):
    """Give the detector's :class:`~ovdense.models.OVTextBBoxHead` the dataset's base classes (for the training
    softmax's novel mask and the VLM fusion weights) before each run, from the data (e.g. OV-LVIS: the rare
    categories of the annotation file are novel), by :func:`apply_base_classes`. The Runner saves the training
    data's metainfo in every checkpoint (``meta['dataset_meta']``), from which :func:`ovdense.apis.init_model`
    gives them back at inference."""

    def _apply(self, runner, dataset) -> None:
        apply_base_classes(runner.model, dataset.metainfo)

    def before_train(self, runner) -> None:
        self._apply(runner, runner.train_dataloader.dataset)

    def before_val(self, runner) -> None:
        self._apply(runner, runner.val_dataloader.dataset)

    def before_test(self, runner) -> None:
        self._apply(runner, runner.test_dataloader.dataset)
