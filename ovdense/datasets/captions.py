"""Image-caption pairs from the synthetic world, for contrastive CLIP pretraining."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ..registry import register
from .synthetic import WorldConfig, generate

# caption styles: which attributes a caption names. Shape-only captions cannot be matched by colour,
# so the contrastive loss has to learn form (colour alone is a shortcut it otherwise takes first).
STYLES = ('full', 'color', 'shape', 'size_texture')


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ', '.join(words[:-1]) + ' and ' + words[-1]


# attributes each caption style names (besides the shape); texture 'plain' is never named
MENTIONS = {'full': ('size', 'color', 'texture'), 'color': ('color',), 'shape': (), 'size_texture': ('size', 'texture')}
ATTRIBUTES = ('cls', 'color', 'size', 'texture')
WORD_ORDER = ('size', 'color', 'texture')  # attribute words before the shape in a caption


def image_key(objects: list[dict], stuff: str, *, gray: bool = False, zoomed: bool = False) -> str:
    """What is true of an image, as JSON ``[stuff, [[cls, color, size, texture], ...]]`` (colour 'grey'
    when shown in grey levels, so no colour word describes it; size ``null`` when zoomed, so no size
    word does)."""
    return json.dumps([stuff, [[o['cls'], 'grey' if gray else o['color'], None if zoomed else o['size'], o['texture']]
                               for o in objects]])


def caption_key(objects: list[dict], stuff: str, style: str) -> str:
    """What a caption of ``style`` asserts, in the layout of :func:`image_key` with ``null`` for what it
    leaves unsaid; :func:`~ovdense.models.pretrainers.clip_pretrainer.describes` matches the two."""
    said = MENTIONS[style]
    objs = [[o['cls']] + [o[a] if a in said and not (a == 'texture' and o[a] == 'plain') else None for a in ATTRIBUTES[1:]]
            for o in objects]
    return json.dumps([stuff if style == 'full' or not objects else None, objs])


def make_caption(objects: list[dict], stuff: str, style: str, rng: np.random.Generator) -> str:
    objs = [objects[i] for i in rng.permutation(len(objects))]
    if not objs:
        return f'a photo of {stuff}.'
    said = MENTIONS[style]
    ws = [' '.join([o[a] for a in WORD_ORDER if a in said and not (a == 'texture' and o[a] == 'plain')]
                   + [o['cls']]) for o in objs]
    return {'full': f'a photo of a {_join(ws)} on {stuff}.', 'shape': f'a picture with a {_join(ws)}.'}.get(style, f'a {_join(ws)}.')


@register('DATASETS', mmdet=False)
class OVSyntheticCaptionDataset(Dataset):
    """A pool of generated scenes with captions drawn per access in random styles.

    The pool is generated once (and cached as ``.npz`` under ``cache_dir`` when given) on first use,
    not in the constructor; a random horizontal flip augments it.

    Args:
        num_images: pool size.
        seed: world seed (use different seeds for training and held-out evaluation).
        image_size: side of the square images.
        max_objects: objects per image (1..max_objects).
        style_probs: probabilities of the caption styles ``STYLES``.
        gray_prob: probability of showing an image in grey levels, captioned without colour words
            (style ``shape`` or ``size_texture``): a batch-level hard negative for colour, so the loss
            can only fall by telling forms apart.
        single_fraction: fraction of the pool made of single-object scenes, whose shape-only captions
            ("a picture with a star.") act like class labels: the contrastive loss then has to tell the
            forms apart instead of matching colours across multi-object captions.
        semantic_keys: return ``data_samples`` as ``dict(caption, caption_key, image_key)`` so that
            :class:`~ovdense.models.OVCLIPPretrainer` treats every caption of the batch that truly
            describes an image as its positive (with 12 shapes, a batch of 64 holds ~5 images of each;
            comparing caption strings would make "a picture with a star." a negative of the other stars).
        zoom: random zoom-in ``(min, max)`` applied with probability ``zoom_prob`` to images captioned
            without size words: a square window of side ``image_size / z`` (z uniform in the range, made
            larger when needed) that contains every object's box is cut out and resized back, so the
            CLIP also sees the scales of upsampled inputs and region crops (outlines and forms drawn
            larger). A zoomed image's size attribute becomes unknown in its semantic key.
        zoom_prob: probability of zooming an eligible image.
        cache_dir: where to cache the pool.
    """

    def __init__(self, num_images: int, seed: int, *, image_size: int = 128, max_objects: int = 3,
                 style_probs: tuple[float, ...] = (0.25, 0.2, 0.35, 0.2), gray_prob: float = 0.0,
                 single_fraction: float = 0.0, semantic_keys: bool = False, zoom: tuple[float, float] | None = None,
                 zoom_prob: float = 0.5, cache_dir: str | None = None) -> None:
        if len(style_probs) != len(STYLES) or abs(sum(style_probs) - 1) > 1e-6:
            raise ValueError(f'style_probs must be {len(STYLES)} probabilities for {STYLES} summing to 1')
        self.num_images = num_images
        self.seed = seed
        self.world = WorldConfig(size=image_size, max_objects=max_objects)
        self.style_probs = np.asarray(style_probs)
        if not 0 <= gray_prob <= 1:
            raise ValueError(f'gray_prob must be in [0, 1], got {gray_prob}')
        self.gray_prob = gray_prob
        if not 0 <= single_fraction <= 1:
            raise ValueError(f'single_fraction must be in [0, 1], got {single_fraction}')
        self.num_single = round(single_fraction * num_images)
        self.semantic_keys = semantic_keys
        self.set_zoom(zoom, zoom_prob)
        self.cache_dir = cache_dir
        self._images: np.ndarray | None = None
        self._meta: list[dict] | None = None
        self._epoch_rng = np.random.default_rng(seed + 12345)

    def set_zoom(self, zoom: tuple[float, float] | None, zoom_prob: float = 0.5) -> None:
        """Change the zoom augmentation (see the class arguments); :class:`~ovdense.hooks.OVZoomCurriculumHook`
        switches it on part-way through training."""
        if zoom is not None and not 1 <= zoom[0] <= zoom[1]:
            raise ValueError(f'zoom must be (min, max) with 1 <= min <= max, got {zoom}')
        if not 0 <= zoom_prob <= 1:
            raise ValueError(f'zoom_prob must be in [0, 1], got {zoom_prob}')
        self.zoom, self.zoom_prob = (tuple(zoom) if zoom is not None else None), zoom_prob

    def __len__(self) -> int:
        return self.num_images

    def _cache_path(self) -> Path | None:
        if not self.cache_dir:
            return None
        key = hashlib.sha1(json.dumps([self.num_images, self.seed, self.world.__dict__, self.num_single]).encode()).hexdigest()[:12]
        # v2: object boxes in the metadata (pools cached before have none and are rebuilt)
        return Path(self.cache_dir) / f'synthetic_pool_{key}_v2.npz'

    def _build(self) -> None:
        path = self._cache_path()
        if path is not None and path.is_file():
            data = np.load(path, allow_pickle=False)
            self._images, self._meta = data['images'], json.loads(str(data['meta']))
            return
        from ..progress import progress_bar
        images = np.empty((self.num_images, self.world.size, self.world.size, 3), np.uint8)
        meta = []
        bar = progress_bar(self.num_images, 'caption pool')
        single = dataclasses.replace(self.world, max_objects=1)
        for i in range(self.num_images):
            s = generate(self.seed, i, single if i < self.num_single else self.world)
            images[i] = s.image
            meta.append(dict(stuff=s.stuff[0], objects=[dict(cls=o.cls, color=o.color, size=o.size, texture=o.texture,
                                                              box=[float(v) for v in o.box]) for o in s.objects]))
            bar.update()
        self._images, self._meta = images, meta
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix('.tmp.npz')
            np.savez(tmp, images=images, meta=np.array(json.dumps(meta)))
            os.replace(tmp, path)

    def __getitem__(self, index: int) -> dict:
        if self._images is None:
            self._build()
        rng = np.random.default_rng([self.seed, index, int(self._epoch_rng.integers(1 << 30))])
        img = self._images[index]
        m = self._meta[index]
        flip = rng.random() < 0.5
        if flip:
            img = img[:, ::-1]
        style = STYLES[int(rng.choice(len(STYLES), p=self.style_probs))]
        gray = self.gray_prob > 0 and rng.random() < self.gray_prob  # no draw when off: the stream stays as before
        if gray:
            img = np.repeat(img @ np.array([0.299, 0.587, 0.114], np.float32), 3).reshape(img.shape).astype(np.uint8)
            style = 'shape' if rng.random() < 0.6 else 'size_texture'
        zoomed = False
        if self.zoom is not None and m['objects'] and 'size' not in MENTIONS[style]:  # no draw when off
            if rng.random() < self.zoom_prob:
                img, zoomed = self._zoom(img, m['objects'], flip, rng), True
        caption = make_caption(m['objects'], m['stuff'], style, rng)
        inputs = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)
        if not self.semantic_keys:
            return dict(inputs=inputs, data_samples=caption)
        keys = dict(caption_key=caption_key(m['objects'], m['stuff'], style),
                    image_key=image_key(m['objects'], m['stuff'], gray=gray, zoomed=zoomed))
        return dict(inputs=inputs, data_samples=dict(caption=caption, **keys))

    def _zoom(self, img: np.ndarray, objects: list[dict], flip: bool, rng: np.random.Generator) -> np.ndarray:
        """Cut a random square window containing every object's box out of (H, W, 3) ``img``, resize back."""
        n = img.shape[0]
        boxes = np.array([o['box'] for o in objects], np.float64)
        if flip:
            boxes[:, [0, 2]] = n - boxes[:, [2, 0]]
        x0, y0 = np.floor(boxes[:, :2].min(0)).astype(int)  # whole pixels around the union of the boxes
        x1, y1 = np.ceil(boxes[:, 2:].max(0)).astype(int)
        side = int(min(n, np.ceil(max(n / rng.uniform(*self.zoom), x1 - x0, y1 - y0))))
        left = int(rng.integers(max(0, x1 - side), min(x0, n - side) + 1))
        top = int(rng.integers(max(0, y1 - side), min(y0, n - side) + 1))
        window = np.ascontiguousarray(img[top:top + side, left:left + side])
        return cv2.resize(window, (n, n), interpolation=cv2.INTER_LINEAR)
