"""What ``tools/benchmark.py`` measures: one function per task, each returning a JSON-able dict of seconds (the
fastest of ``repeat`` runs after a warm-up) and peak RSS in MB. Random weights of the named open_clip architecture
unless a checkpoint is given: nothing is downloaded. Threads are the caller's (``torch.set_num_threads``).

Speed and memory goals are measured here, never asserted in tests (the tests check what these report on the tiny
models, not how fast).
"""
from __future__ import annotations

import multiprocessing
import resource
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable

import torch

from .profiling import StageProfiler, build_reference, compare_with_reference, inference_stages, profile_inference

def peak_rss_mb() -> int:
    """This process's peak resident set so far, MB (Linux reports KB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def _fastest(fn: Callable[[], Any], repeat: int) -> float:
    fn()  # warm-up
    best = float('inf')
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _clip(model: str | None, clip_config: str | None, checkpoint: str | None = None) -> dict[str, Any]:
    clip = dict(config_file=clip_config) if clip_config else dict(model_name=model)
    return dict(clip, checkpoint=checkpoint) if checkpoint else clip


def _random_vfm(config: str) -> dict[str, Any]:
    """The config option that gives a method's VFM proxy (ProxyCLIP's) random weights too, where it has one."""
    from mmengine.config import Config
    proxy = Config.fromfile(config).model.backbone.get('method', {}).get('proxy')
    return {'model.backbone.method.proxy.pretrained': False} if isinstance(proxy, dict) else {}


def _sliding_segmentor(model: str, clip_config: str | None, mode: str, vocab: str, crop: int, stride: int,
                       window_batch: int) -> torch.nn.Module:
    from .models import OVCLIPViT, OVSegmentor
    from .models.methods import registered_methods
    from .vocabulary import Vocabulary
    methods = registered_methods()
    if mode not in methods:
        raise ValueError(f'unknown mode {mode!r}; valid: {sorted(methods)}')
    backbone = OVCLIPViT(_clip(model, clip_config), dict(type=methods[mode].__name__))
    text = dict(vocabulary=Vocabulary.from_dataset(vocab), templates='none')
    return OVSegmentor(backbone, text, slide_crop=crop, slide_stride=stride, window_batch=window_batch).eval()


def _dense_peak_rss(build: dict[str, Any], size: tuple[int, int], threads: int) -> int:
    """In a fresh process: build the segmentor (``build``: its arguments), run one dense inference of ``size``,
    return the peak RSS."""
    torch.set_num_threads(threads)
    seg = _sliding_segmentor(**build)
    h, w = size
    with torch.no_grad():
        seg.inference(torch.randn(1, 3, h, w), [dict(img_shape=(h, w), ori_shape=(h, w))])
    return peak_rss_mb()


def dense_vs_plain(model: str = 'ViT-B-16', clip_config: str | None = None, *, mode: str = 'clearclip',
                   size: tuple[int, int] = (448, 448), crop: int = 224, stride: int = 112, window_batch: int = 8,
                   vocab: str = 'voc21', repeat: int = 3, fresh_process: bool = True) -> dict[str, Any]:
    """Seconds of a full dense inference (windows, text matching, merging, resizing) of one random image of
    ``size`` against a plain open_clip image forward over the same windows in the same batches, their ratio, and
    (``fresh_process``) the peak RSS of a new process that builds the model and runs one dense inference."""
    from .models.utils import slide_windows
    build = dict(model=model, clip_config=clip_config, mode=mode, vocab=vocab, crop=crop, stride=stride,
                 window_batch=window_batch)
    seg = _sliding_segmentor(**build)
    h, w = size
    x = torch.randn(1, 3, h, w)
    meta = [dict(img_shape=(h, w), ori_shape=(h, w))]
    windows = slide_windows(h, w, crop, stride) if crop > 0 else [(0, 0, h, w)]
    crops = torch.stack([x[0, :, y1:y2, x1:x2] for y1, x1, y2, x2 in windows])
    visual = seg.backbone.clip.visual
    with torch.no_grad():
        seg.class_embeddings()  # the text side cached, as in a dataset run
        plain = _fastest(lambda: [visual(crops[i:i + window_batch]) for i in range(0, len(crops), window_batch)],
                         repeat)
        dense = _fastest(lambda: seg.inference(x, meta), repeat)
    res = dict(windows=len(windows), plain_forward_s=plain, dense_inference_s=dense, ratio=dense / plain)
    if fresh_process:
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context('spawn')) as pool:
            res['peak_rss_mb'] = pool.submit(_dense_peak_rss, build, size, torch.get_num_threads()).result()
    return res


def clipself_iteration(model: str = 'ViT-B-16', clip_config: str | None = None, *,
                       size: tuple[int, int] = (1024, 1024), batch: int = 2, boxes: int = 6, vfm: str | None = None,
                       repeat: int = 3) -> dict[str, Any]:
    """Seconds per CLIPSelf training iteration (forward, backward, AdamW step) on random images and boxes, and the
    peak RSS; with ``vfm`` (a timm name, random weights) DeCLIP's (its decoupled last block, content + context losses,
    the VFM at the student's grid)."""
    from .models import OVCLIPSelf
    declip = dict(method=dict(type='OVDeCLIP'), normalize_dense=False, losses=[
        dict(type='OVRegionCosineLoss'),
        dict(type='OVContextLoss', weight=0.1, vfm=dict(model_name=vfm, pretrained=False))]) if vfm else {}
    net = OVCLIPSelf(_clip(model, clip_config), **declip)
    net.init_weights()
    net.train()
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-5)
    crop = net.teacher.visual.image_size
    crop = crop[0] if isinstance(crop, tuple) else crop
    g = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 3, *size, generator=g)
    samples = []
    for _ in range(batch):
        xy = torch.rand(boxes, 2, generator=g) * 0.6
        samples.append(dict(boxes=torch.cat([xy, xy + 0.1 + 0.3 * torch.rand(boxes, 2, generator=g)], 1),
                            crops=torch.randn(boxes, 3, crop, crop, generator=g)))

    def step() -> None:
        loss = sum(v for k, v in net(images, samples, mode='loss').items() if k.startswith('loss_'))
        opt.zero_grad()
        loss.backward()
        opt.step()

    return dict(s_per_iter=_fastest(step, repeat), peak_rss_mb=peak_rss_mb())


def catseg_inference(model: str = 'ViT-B-16', clip_config: str | None = None, *, size: tuple[int, int] = (640, 640),
                     classes: int = 150, crop_batch: int | None = None, mode: str = 'slide',
                     repeat: int = 3) -> dict[str, Any]:
    """Seconds per image of CAT-Seg through its shipped ViT-B/16 config's model and protocol (``size``: the image as
    the test pipeline gives it; ``classes`` made-up names; ``crop_batch`` crops aggregated at once) and the peak
    RSS."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    from .apis import config_root
    cfg = Config.fromfile(str(config_root() / 'catseg/catseg_vit-b16_ade150-640.py'))
    init_default_scope('mmseg')
    cfg.model.backbone.clip = _clip(model, clip_config)
    cfg.model.update(crop_batch=crop_batch, test_cfg=dict(mode=mode))
    cfg.model.text_encoder.vocabulary = [f'made-up class {i}' for i in range(classes)]
    net = MODELS.build(cfg.model).eval()
    with torch.no_grad():
        text = net.class_embeddings()
        image = torch.randn(3, *size)
        seconds = _fastest(lambda: net.inference(image, text), repeat)
    return dict(s_per_image=seconds, peak_rss_mb=peak_rss_mb())


def scale(config: str | None = None, model: str | None = None, *, mode: str = 'clearclip',
          clip_config: str | None = None, checkpoint: str | None = None, size: tuple[int, int] = (448, 448),
          image: str | None = None, vocab: str = 'voc21', classes: int | None = None, templates: str | None = None,
          budget: int | None = None, images: int = 1) -> dict[str, Any]:
    """One image of ``size`` (random pixels, or ``image`` resized) through ``init_model`` + ``inference_model``
    exactly as the demo runs it (``config``, default ``mode``'s Context-59 protocol; the shipped tiny CLIP unless
    ``model`` / ``clip_config``), with ``classes`` made-up names or ``vocab`` (a dataset name or a file): seconds to
    encode the text, seconds to segment and the part spent in PAMR (each of ``images`` runs of the same image, the
    peak as over a data set), the peak RSS after the text and at the end."""
    import numpy as np

    from .apis import find_config, inference_model, init_model, read_image
    from .vocabulary import Vocabulary
    if model or clip_config:  # that architecture, random weights or the checkpoint
        clip = _clip(model, clip_config, checkpoint)
    else:
        from .assets import TINYCLIP_SYNTHETIC
        clip = dict(TINYCLIP_SYNTHETIC, **({'checkpoint': checkpoint} if checkpoint else {}))
    if classes:
        vocabulary = Vocabulary.from_list([f'class {i}' for i in range(classes)])
    else:
        vocabulary = Vocabulary.from_txt(vocab) if Path(vocab).is_file() else Vocabulary.from_dataset(vocab)
    opts: dict[str, Any] = {} if templates is None else {'model.text_encoder.templates': templates}
    if budget:
        opts['model.memory_budget'] = budget
    config = str(config or find_config(mode, 'context59'))
    if model or clip_config:
        opts.update(_random_vfm(config))
    net = init_model(config, clip=clip, cfg_options=opts)
    h, w = size
    if image:
        import cv2
        pixels = np.ascontiguousarray(cv2.resize(read_image(image), (w, h), interpolation=cv2.INTER_LINEAR))
    else:
        pixels = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    t = time.perf_counter()
    with torch.no_grad():
        net.class_embeddings(vocabulary)
    text_s, text_rss = time.perf_counter() - t, peak_rss_mb()
    prof = StageProfiler({'pamr': inference_stages(net)['pamr']})
    seg_s, pamr_s = [], []
    with prof:
        for _ in range(images):  # the same image again: the process's peak as over a data set (allocator state)
            prof.reset()
            t = time.perf_counter()
            label = inference_model(net, pixels[:, :, ::-1], vocabulary=vocabulary).pred_sem_seg.data
            seg_s.append(time.perf_counter() - t)
            pamr_s.append(prof.stages['pamr'].seconds)
    return dict(dense_mode=net.backbone.method.name, queries=len(vocabulary.queries), text_s=text_s,
                seg_s=seg_s[0] if images == 1 else seg_s, pamr_s=pamr_s[0] if images == 1 else pamr_s,
                classes_in_label=int(label.unique().numel()), peak_rss_after_text_mb=text_rss,
                peak_rss_mb=peak_rss_mb())


def _protocol_model(config: str, clip: dict[str, Any]) -> torch.nn.Module:
    from .apis import init_model
    return init_model(config, clip=clip, cfg_options=_random_vfm(config))


def protocol(config: str, image: str, *, model: str = 'ViT-B-16-quickgelu', clip_config: str | None = None,
             checkpoint: str | None = None, repeat: int = 3) -> dict[str, Any]:
    """One image through a shipped protocol: each stage's seconds, GFLOP and share of the FLOP bound at this
    machine's fp32 matmul rate, measured in the run (:func:`~ovdense.profiling.profile_inference`), and the peak
    RSS. ``model``: OpenAI's ViT-B/16 architecture by default, as the configs' ``pretrained='openai'``."""
    res = profile_inference(_protocol_model(config, _clip(model, clip_config, checkpoint)), image, repeat=repeat)
    return dict(res, peak_rss_mb=peak_rss_mb())


def reference(config: str, image: str, *, repo: str, ref_config: str, model: str = 'ViT-B-16-quickgelu',
              clip_config: str | None = None, repeat: int = 3) -> dict[str, Any]:
    """A reference's own code from a local checkout (``repo``, its config ``ref_config``) and ovdense (``config``)
    on the same random OpenAI-format CLIP weights and image, alternated in one process: seconds of each, their ratio,
    the share of pixels where the labels agree (:func:`~ovdense.profiling.compare_with_reference`)."""
    from .clip import build_clip
    torch.manual_seed(0)
    arch = _clip(model, clip_config)
    with tempfile.TemporaryDirectory() as tmp:  # random weights in the OpenAI format, which both sides read
        weights = Path(tmp) / 'clip.pt'
        torch.save(build_clip(**arch).model.state_dict(), weights)
        ours = _protocol_model(config, dict(arch, checkpoint=str(weights)))
        ref = build_reference(repo, ref_config, weights)
    return compare_with_reference(ours, ref, image, repeat=repeat)
