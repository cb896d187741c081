"""Colored overlays with a legend, the result files of the demos (label maps with their vocabulary,
detections), all written atomically."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np


def palette(n: int, seed: int = 7) -> np.ndarray:
    """(n, 3) uint8 distinct-ish RGB colors, stable for a given n."""
    rng = np.random.default_rng(seed)
    hues = (np.arange(n) * 0.61803398875 + rng.random()) % 1.0
    hsv = np.stack([hues * 179, np.full(n, 200), np.full(n, 230)], 1).astype(np.uint8)[None]
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0]


def overlay_segmentation(image_rgb: np.ndarray, label: np.ndarray, names: Sequence[str], *,
                         alpha: float = 0.55, colors: np.ndarray | None = None) -> np.ndarray:
    """Blend a label map (H, W) over an RGB image (H, W, 3) and add a legend of the classes present.

    Args:
        alpha: the colours' opacity.
        colors: (>= len(names), 3) uint8 RGB per class (default :func:`palette`).

    Returns:
        (H', W + legend width, 3) uint8 RGB.
    """
    names = [legend_name(n) for n in names]
    colors = palette(len(names)) if colors is None else np.asarray(colors, np.uint8)
    color_map = colors[np.clip(label, 0, len(names) - 1)]
    out = (image_rgb.astype(np.float32) * (1 - alpha) + color_map.astype(np.float32) * alpha).astype(np.uint8)
    present = [int(i) for i in np.unique(label) if 0 <= i < len(names)]
    present.sort(key=lambda i: -(label == i).sum())
    row = 22
    legend_w = 12 + max([cv2.getTextSize(names[i], cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)[0][0] for i in present] or [0]) + 30
    h = max(out.shape[0], row * len(present) + 10)
    canvas = np.full((h, out.shape[1] + legend_w, 3), 255, np.uint8)
    canvas[:out.shape[0], :out.shape[1]] = out
    for k, i in enumerate(present):
        y = 8 + k * row
        x = out.shape[1] + 8
        cv2.rectangle(canvas, (x, y), (x + 16, y + 16), tuple(int(c) for c in colors[i]), -1)
        cv2.putText(canvas, names[i], (x + 22, y + 13), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return canvas


LEGEND_CHARS = 40


def legend_name(name: str) -> str:
    """A class name cut to :data:`LEGEND_CHARS` characters for legends and box labels (the files keep it whole)."""
    return name if len(name) <= LEGEND_CHARS else name[:LEGEND_CHARS - 3] + '...'


def draw_detections(image_rgb: np.ndarray, pred_instances, names: Sequence[str], *,
                    score_thr: float = 0.3, colors: np.ndarray | None = None) -> np.ndarray:
    """Predicted boxes (and masks) with 'class score' labels, drawn by mmdet's DetLocalVisualizer:
    (H, W, 3) uint8 RGB. ``pred_instances``: an InstanceData with bboxes, labels, scores [, masks]."""
    from mmdet.structures import DetDataSample
    from mmdet.visualization import DetLocalVisualizer
    vis = DetLocalVisualizer.get_instance('ovdense_detections')
    colors = palette(len(names)) if colors is None else colors
    vis.dataset_meta = dict(classes=tuple(legend_name(n) for n in names), palette=[tuple(int(v) for v in c) for c in colors])
    sample = DetDataSample(pred_instances=pred_instances.cpu())
    vis.add_datasample('detections', np.ascontiguousarray(image_rgb), sample, draw_gt=False, show=False,
                       pred_score_thr=score_thr)
    return vis.get_image()


def write_image_atomic(path: str | os.PathLike, image: np.ndarray, *, rgb: bool = True) -> None:
    """Encode to PNG in memory, write to a temporary file next to ``path``, then rename over it.

    A failure at any point leaves no partial file and keeps whatever was at ``path`` before.
    """
    path = Path(path)
    data = image[..., ::-1] if rgb and image.ndim == 3 else image
    ok, buf = cv2.imencode(path.suffix or '.png', np.ascontiguousarray(data))
    if not ok:
        raise ValueError(f'could not encode image for {path}')
    write_bytes_atomic(path, buf.tobytes())


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temporary file next to ``path``, then rename over it (no partial file, ever)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results are for people to open
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def clean_stale_temporaries(folder: str | os.PathLike, *, older_than: float = 600.0) -> list[Path]:
    """Remove the temporaries of :func:`write_bytes_atomic` that a killed process left in ``folder`` (hidden
    ``.NAME.*.tmp`` files older than ``older_than`` seconds, so a concurrent writer's are kept). Returns them."""
    import time
    now, removed = time.time(), []
    for p in Path(folder).glob('.*.tmp'):
        try:
            if p.is_file() and now - p.stat().st_mtime > older_than:
                p.unlink()
                removed.append(p)
        except OSError:  # gone meanwhile, or not ours to remove
            pass
    return removed


def write_json_atomic(path: str | os.PathLike, obj: object) -> None:
    """JSON (indented) written atomically."""
    import json
    write_bytes_atomic(path, (json.dumps(obj, indent=1) + '\n').encode())


def unique_stems(paths: Sequence[str | os.PathLike]) -> list[str]:
    """Output names for input files: the file stem, or, when stems collide (``d1/x.png``, ``d2/x.png``,
    ``d2/x.jpg``), the path below the inputs' common folder with ``__`` for ``/`` and the suffix kept
    (``d1__x_png``), so no result overwrites another."""
    paths = [Path(p).resolve() for p in paths]
    stems = [p.stem for p in paths]
    common = Path(os.path.commonpath([str(p.parent) for p in paths])) if paths else Path('.')
    out = []
    for p, stem in zip(paths, stems):
        if stems.count(stem) > 1:
            rel = p.relative_to(common)
            stem = '__'.join([*rel.parent.parts, rel.stem]) + '_' + p.suffix.lstrip('.')
        out.append(stem)
    used: set[str] = set()  # still equal (the same file twice, or names made equal by '__'): number them
    for i, name in enumerate(out):
        cand, k = name, 1
        while cand.lower() in used:  # lower: case-insensitive file systems
            k += 1
            cand = f'{name}_{k}'
        used.add(cand.lower())
        out[i] = cand
    return out


def save_segmentation(out_dir: str | os.PathLike, stem: str, image_rgb: np.ndarray, label: np.ndarray,
                      classes: Sequence[Sequence[str]], *, alpha: float = 0.55, colors: np.ndarray | None = None,
                      **meta: object) -> tuple[dict[str, Path], dict[str, float]]:
    """Write ``STEM_overlay.png`` (colored classes and legend), ``STEM_label.png`` (class index per pixel: gray
    uint8, uint16 beyond 256 classes, and beyond 65,536 classes RGB with index = R + 256 G + 65536 B, as the JSON's
    ``label_encoding`` says) and ``STEM_label.json`` (the vocabulary that made it: per index its names, the pixel share
    of each class found, and ``meta``). Returns the paths by kind and the shares (%, largest first)."""
    out = Path(out_dir)
    counts = np.bincount(label.ravel(), minlength=len(classes))
    shares = {classes[i][0]: round(100.0 * counts[i] / label.size, 2) for i in np.argsort(-counts) if counts[i] > 0}
    files = dict(overlay=out / f'{stem}_overlay.png', label=out / f'{stem}_label.png', json=out / f'{stem}_label.json')
    if len(classes) > 256 ** 3:
        raise ValueError(f'{len(classes)} classes do not fit a label PNG (at most {256 ** 3})')
    # the label map and its vocabulary are one unit: an older JSON goes first, so an interrupted write leaves a label
    # map without its JSON (visibly incomplete), never beside another vocabulary's
    files['json'].unlink(missing_ok=True)
    if len(classes) <= 65536:
        encoding = 'index'
        write_image_atomic(files['label'], label.astype('uint8' if len(classes) <= 256 else 'uint16'), rgb=False)
    else:  # no single-channel PNG holds more: 24-bit RGB
        encoding = 'rgb24'
        idx = label.astype(np.int64)
        write_image_atomic(files['label'], np.stack([idx % 256, idx // 256 % 256, idx // 65536], -1).astype(np.uint8))
    write_json_atomic(files['json'], dict(classes=[list(c) for c in classes], label_encoding=encoding,
                                          shares_percent=shares, **meta))
    write_image_atomic(files['overlay'], overlay_segmentation(image_rgb, label, [c[0] for c in classes], alpha=alpha,
                                                              colors=colors))
    return files, shares


def save_detections(out_dir: str | os.PathLike, stem: str, image_rgb: np.ndarray, pred_instances,
                    names: Sequence[str], *, score_thr: float, colors: np.ndarray | None = None,
                    **meta: object) -> tuple[dict[str, Path], list[dict]]:
    """Write ``STEM_det.png`` (boxes with class and score) and ``STEM_det.json`` (the vocabulary, ``meta``
    and the detections scoring at least ``score_thr``). Returns the paths by kind and the detections."""
    out = Path(out_dir)
    p = pred_instances.cpu()
    dets = [dict(label=names[int(c)], score=round(float(s), 4), bbox=[round(float(v), 1) for v in b])
            for b, s, c in zip(p.bboxes, p.scores, p.labels) if s >= score_thr]
    files = dict(image=out / f'{stem}_det.png', json=out / f'{stem}_det.json')
    write_image_atomic(files['image'], draw_detections(image_rgb, p, names, score_thr=score_thr, colors=colors))
    write_json_atomic(files['json'], dict(classes=list(names), score_thr=score_thr, **meta, detections=dets))
    return files, dets


def named_palette(name: str, n: int) -> np.ndarray:
    """(n, 3) uint8 RGB colours: ``'ovdense'`` (:func:`palette`) or an mmseg dataset's palette (``'voc'``,
    ``'ade20k'``, ``'cityscapes'``, ... as mmseg's demo ``--palette`` takes), which must have n colours or more.

    Raises:
        ValueError: an unknown name (listing the valid ones) or too few colours.
    """
    if name == 'ovdense':
        return palette(n)
    from mmseg.utils import class_names
    known = sorted(k[:-len('_palette')] for k in dir(class_names) if k.endswith('_palette') and k != 'get_palette')
    if name not in known and not any(name in alias for alias in class_names.dataset_aliases.values()):
        raise ValueError(f"unknown palette '{name}'; valid: ['ovdense', {', '.join(repr(k) for k in known)}]")
    colors = np.asarray(class_names.get_palette(name), np.uint8)
    if len(colors) < n:
        raise ValueError(f"palette '{name}' has {len(colors)} colours, the vocabulary {n} classes")
    return colors[:n]
