"""A procedural open-vocabulary world: shapes with attributes on stuff backgrounds.

Every image is a deterministic function of (seed, index). Objects are 12 classes that differ in
form (not only colour), with colour, size and texture attributes; the background is one or two
"stuff" classes; objects may occlude each other. For each image the generator returns the RGB
image, a semantic map, instance masks, boxes (of the visible part) and captions in several phrasings.
Standard exports (COCO instances JSON, semantic PNGs) let mmdet/mmseg pipelines read it as real data.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

OBJECT_CLASSES = ('circle', 'square', 'triangle', 'star', 'cross', 'ring',
                  'diamond', 'hexagon', 'crescent', 'arrow', 'heart', 'pentagon')
NOVEL_CLASSES = ('star', 'hexagon', 'heart')
BASE_CLASSES = tuple(c for c in OBJECT_CLASSES if c not in NOVEL_CLASSES)
STUFF_CLASSES = ('grass', 'sand', 'water', 'snow')
COLORS = {'red': (220, 40, 40), 'green': (40, 170, 60), 'blue': (40, 80, 220), 'yellow': (235, 215, 40),
          'purple': (140, 50, 180), 'orange': (245, 140, 30), 'black': (25, 25, 25), 'white': (245, 245, 245)}
SIZES = ('small', 'large')
TEXTURES = ('plain', 'striped', 'dotted')
STUFF_BASE = {'grass': (90, 150, 70), 'sand': (215, 195, 140), 'water': (70, 130, 190), 'snow': (225, 230, 240)}
IGNORE = 255
OUTLINE = (20, 20, 20)


def semantic_classes() -> tuple[str, ...]:
    """Label order of the semantic maps: stuff classes first, then object classes."""
    return STUFF_CLASSES + OBJECT_CLASSES


@dataclass
class SceneObject:
    cls: str
    color: str
    size: str
    texture: str
    mask: np.ndarray = field(repr=False)  # (H, W) bool, visible part

    @property
    def box(self) -> tuple[float, float, float, float]:
        ys, xs = np.nonzero(self.mask)
        return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)

    def phrase(self, *, color: bool = True, size: bool = True, texture: bool = True) -> str:
        words = [self.size if size else '', self.color if color else '',
                 self.texture if texture and self.texture != 'plain' else '', self.cls]
        return ' '.join(w for w in words if w)


@dataclass
class Scene:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    semantic: np.ndarray  # (H, W) uint8, index into semantic_classes()
    objects: list[SceneObject]
    stuff: list[str]
    captions: list[str]


def _shape_polygon(cls: str, cx: float, cy: float, r: float, rot: float) -> list[np.ndarray]:
    """Polygons (filled) of a shape; holes are drawn by the caller for ring/crescent."""
    def poly(angles, radii):
        pts = [(cx + rr * math.cos(a + rot), cy + rr * math.sin(a + rot)) for a, rr in zip(angles, radii)]
        return np.round(np.array(pts)).astype(np.int32)

    if cls in ('circle', 'ring', 'crescent'):
        n = 48
        return [poly([2 * math.pi * i / n for i in range(n)], [r] * n)]
    if cls == 'square':
        return [poly([math.pi / 4 + i * math.pi / 2 for i in range(4)], [r] * 4)]
    if cls == 'diamond':
        return [poly([i * math.pi / 2 for i in range(4)], [r, 0.6 * r, r, 0.6 * r])]
    if cls in ('triangle', 'pentagon', 'hexagon'):
        n = {'triangle': 3, 'pentagon': 5, 'hexagon': 6}[cls]
        return [poly([-math.pi / 2 + 2 * math.pi * i / n for i in range(n)], [r] * n)]
    if cls == 'star':
        return [poly([-math.pi / 2 + math.pi * i / 5 for i in range(10)], [r if i % 2 == 0 else 0.42 * r for i in range(10)])]
    if cls == 'cross':
        w = 0.33 * r
        pts = [(-w, -r), (w, -r), (w, -w), (r, -w), (r, w), (w, w), (w, r), (-w, r), (-w, w), (-r, w), (-r, -w), (-w, -w)]
    elif cls == 'arrow':
        pts = [(-r, -0.25 * r), (0.1 * r, -0.25 * r), (0.1 * r, -0.7 * r), (r, 0), (0.1 * r, 0.7 * r),
               (0.1 * r, 0.25 * r), (-r, 0.25 * r)]
    elif cls == 'heart':
        ts = np.linspace(0, 2 * math.pi, 60)
        pts = [(r * 0.06 * 16 * math.sin(t) ** 3,
                -r * 0.06 * (13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)))
               for t in ts]
        rot = 0.25 * math.sin(rot)  # hearts stay roughly upright
    else:
        raise ValueError(f"unknown shape '{cls}'; valid: {list(OBJECT_CLASSES)}")
    c, s = math.cos(rot), math.sin(rot)
    return [np.round(np.array([(cx + x * c - y * s, cy + x * s + y * c) for x, y in pts])).astype(np.int32)]


def _shape_mask(cls: str, h: int, w: int, cx: float, cy: float, r: float, rot: float) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    cv2.fillPoly(m, _shape_polygon(cls, cx, cy, r, rot), 1, lineType=cv2.LINE_8)
    if cls == 'ring':
        cv2.circle(m, (round(cx), round(cy)), round(0.55 * r), 0, -1)
    elif cls == 'crescent':
        cv2.circle(m, (round(cx + 0.45 * r * math.cos(rot)), round(cy + 0.45 * r * math.sin(rot))), round(0.85 * r), 0, -1)
    return m.astype(bool)


def _texture(rng: np.random.Generator, texture: str, color: tuple[int, int, int], h: int, w: int) -> np.ndarray:
    base = np.empty((h, w, 3), np.float32)
    base[:] = color
    if texture == 'striped':
        period = int(rng.integers(5, 9))
        yy, xx = np.mgrid[:h, :w]
        stripes = ((xx + yy) // period) % 2 == 0
        base[stripes] = base[stripes] * 0.55 + 255 * 0.45 * (np.mean(color) < 128)
    elif texture == 'dotted':
        period = int(rng.integers(6, 10))
        yy, xx = np.mgrid[:h, :w]
        dots = ((yy % period - period / 2) ** 2 + (xx % period - period / 2) ** 2) < (period / 3.2) ** 2
        base[dots] = base[dots] * 0.45 + 255 * 0.55 * (np.mean(color) < 128)
    return base


def _stuff(rng: np.random.Generator, name: str, h: int, w: int) -> np.ndarray:
    base = np.empty((h, w, 3), np.float32)
    base[:] = STUFF_BASE[name]
    noise = rng.normal(0, 1, (h // 4 + 1, w // 4 + 1)).astype(np.float32)
    noise = cv2.resize(noise, (w, h), interpolation=cv2.INTER_LINEAR)[..., None]
    amp = {'grass': 18, 'sand': 10, 'water': 8, 'snow': 5}[name]
    img = base + amp * noise
    if name == 'water':
        yy = np.arange(h, dtype=np.float32)[:, None, None]
        img += 10 * np.sin(yy / 3.0 + rng.uniform(0, 6))
    return img


def _captions(rng: np.random.Generator, objects: list[SceneObject], stuff: list[str]) -> list[str]:
    objs = list(objects)
    rng.shuffle(objs)
    full = [o.phrase() for o in objs]
    plain = [o.phrase(size=False, texture=False) for o in objs]
    shapes = [o.cls for o in objs]
    def join(ws):
        return ws[0] if len(ws) == 1 else ', '.join(ws[:-1]) + ' and ' + ws[-1]
    return [
        f'a photo of a {join(full)} on {stuff[0]}.',
        f'{join(plain)}.',
        f'a picture with a {join(shapes)}.',
        f'there is a {join(shapes)} in the scene.',
        f'a {join([o.phrase(color=False) for o in objs])}.',
    ]


@dataclass(frozen=True)
class WorldConfig:
    """Knobs of the world (all images of one config share them)."""
    size: int = 128
    min_objects: int = 1
    max_objects: int = 3
    radius: tuple[float, float] = (0.2, 0.35)  # fraction of the image side: small below the midpoint
    two_stuff_prob: float = 0.4
    classes: tuple[str, ...] = OBJECT_CLASSES
    rotation: float = 0.3  # objects are turned by at most this angle (radians) from upright
    outline: int = 2  # width (px) of a dark contour drawn inside each object's silhouette (clip-art style)


def generate(seed: int, index: int, cfg: WorldConfig = WorldConfig()) -> Scene:
    """The scene number ``index`` of the world ``seed``."""
    rng = np.random.default_rng([seed, index])
    h = w = cfg.size
    stuff = list(rng.choice(STUFF_CLASSES, 2 if rng.random() < cfg.two_stuff_prob else 1, replace=False))
    image = _stuff(rng, stuff[0], h, w)
    semantic = np.full((h, w), STUFF_CLASSES.index(stuff[0]), np.uint8)
    if len(stuff) == 2:
        split = int(rng.integers(h // 4, 3 * h // 4))
        image[split:] = _stuff(rng, stuff[1], h, w)[split:]
        semantic[split:] = STUFF_CLASSES.index(stuff[1])
    n = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    placed: list[SceneObject] = []
    instance = np.full((h, w), -1, np.int32)  # index into `placed` of the topmost object
    for _ in range(n):
        cls = str(rng.choice(cfg.classes))
        color = str(rng.choice(list(COLORS)))
        texture = str(rng.choice(TEXTURES, p=[0.5, 0.25, 0.25]))
        frac = rng.uniform(*cfg.radius)
        size = 'small' if frac < sum(cfg.radius) / 2 else 'large'
        r = frac * h
        cx, cy = rng.uniform(r * 0.6, w - r * 0.6), rng.uniform(r * 0.6, h - r * 0.6)
        rot = rng.uniform(0, 2 * math.pi)
        if cfg.rotation < math.pi:  # same draw, rescaled: the scene stream does not change with the knob
            rot = (rot / math.pi - 1) * cfg.rotation
        mask = _shape_mask(cls, h, w, cx, cy, r, rot)
        tex = _texture(rng, texture, COLORS[color], h, w)
        image[mask] = tex[mask]
        if cfg.outline > 0:
            m8 = mask.astype(np.uint8)
            image[(m8 - cv2.erode(m8, np.ones((3, 3), np.uint8), iterations=cfg.outline)).astype(bool)] = OUTLINE
        semantic[mask] = len(STUFF_CLASSES) + OBJECT_CLASSES.index(cls)
        instance[mask] = len(placed)
        placed.append(SceneObject(cls, color, size, texture, mask))
    objects = []
    for k, o in enumerate(placed):  # keep the visible part; objects mostly hidden are not annotated
        o.mask = instance == k
        if o.mask.sum() >= 24:
            objects.append(o)
        else:
            semantic[o.mask] = IGNORE
    image = np.clip(image, 0, 255).astype(np.uint8)
    return Scene(image=image, semantic=semantic, objects=objects, stuff=stuff,
                 captions=_captions(rng, objects, stuff) if objects else [f'a photo of {stuff[0]}.'] * 5)


def export(out_dir: str | Path, *, split: str, num_images: int, seed: int,
           cfg: WorldConfig = WorldConfig(), progress: bool = True) -> Path:
    """Write ``num_images`` scenes in standard formats under ``out_dir/split``.

    Layout: ``images/NNNNNN.png`` (RGB), ``semantic/NNNNNN.png`` (uint8 labels in the order of
    :func:`semantic_classes`, 255 ignore), ``instances.json`` (COCO, RLE masks, categories = the object
    classes with their ``base``/``novel`` split), ``captions.json`` (image file -> captions).
    The split folder is built next to the target and renamed into place at the end, so an interrupted
    export never leaves a half-written split behind.
    """
    import os
    import shutil

    from pycocotools import mask as mask_utils
    out = Path(out_dir) / split
    tmp = Path(out_dir) / f'.{split}.partial'
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / 'images').mkdir(parents=True)
    (tmp / 'semantic').mkdir()
    cats = [dict(id=i + 1, name=c, split='novel' if c in NOVEL_CLASSES else 'base') for i, c in enumerate(OBJECT_CLASSES)]
    images, anns, captions = [], [], {}
    bar = None
    if progress:
        from ..progress import progress_bar
        bar = progress_bar(num_images, f'synthetic {split}')
    for i in range(num_images):
        scene = generate(seed, i, cfg)
        name = f'{i:06d}.png'
        cv2.imwrite(str(tmp / 'images' / name), scene.image[:, :, ::-1])
        cv2.imwrite(str(tmp / 'semantic' / name), scene.semantic)
        images.append(dict(id=i, file_name=name, height=scene.image.shape[0], width=scene.image.shape[1]))
        for o in scene.objects:
            rle = mask_utils.encode(np.asfortranarray(o.mask.astype(np.uint8)))
            x0, y0, x1, y1 = o.box
            anns.append(dict(id=len(anns) + 1, image_id=i, category_id=OBJECT_CLASSES.index(o.cls) + 1,
                             segmentation=dict(size=rle['size'], counts=rle['counts'].decode()),
                             area=float(o.mask.sum()), bbox=[x0, y0, x1 - x0, y1 - y0], iscrowd=0,
                             attributes=dict(color=o.color, size=o.size, texture=o.texture)))
        captions[name] = scene.captions
        if bar:
            bar.update()
    meta = dict(seed=seed, world=cfg.__dict__, stuff_classes=STUFF_CLASSES, semantic_classes=semantic_classes())
    (tmp / 'instances.json').write_text(json.dumps(dict(images=images, annotations=anns, categories=cats, info=meta)))
    (tmp / 'captions.json').write_text(json.dumps(captions))
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out
