"""Data for CLIPSelf self-distillation and region classification (COCO-format annotation files).

Images are resized as the reference (``wusize/CLIPSelf``): the student input by *resize longest*
(long side to ``input_size``, PIL bicubic, zero padding right/bottom before normalisation), the
teacher crops by *resize max size* (long side to the CLIP's native size, zero padding centred).
Boxes are returned normalised to the padded student input.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.structures import BaseDataElement
from PIL import Image
from torch.utils.data import Dataset

from ..registry import register
from ..clip.model import OPENAI_MEAN, OPENAI_STD
from ..clip.vfm import IMAGENET_MEAN, IMAGENET_STD

REGION_MODES = ('grid', 'proposals', 'annotations')


def _to_tensor(img: Image.Image, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    x = torch.from_numpy(np.asarray(img.convert('RGB'), dtype=np.float32) / 255.0).permute(2, 0, 1)
    return (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


def resize_longest(img: Image.Image, size: int, *, mean: Sequence[float] = OPENAI_MEAN,
                   std: Sequence[float] = OPENAI_STD) -> tuple[torch.Tensor, float]:
    """(3, size, size) normalised tensor of ``img`` with its long side resized to ``size`` and zeros
    padded right/bottom (before normalisation), and the scale factor applied."""
    w, h = img.size
    scale = size / float(max(h, w))
    nh, nw = round(h * scale), round(w * scale)
    canvas = Image.new('RGB', (size, size), (0, 0, 0))
    canvas.paste(img.convert('RGB').resize((nw, nh), Image.BICUBIC), (0, 0))
    return _to_tensor(canvas, mean, std), scale


def resize_max_size(img: Image.Image, size: int, *, mean: Sequence[float] = OPENAI_MEAN,
                    std: Sequence[float] = OPENAI_STD) -> torch.Tensor:
    """(3, size, size) normalised tensor: long side to ``size`` (bicubic), zero padding centred."""
    w, h = img.size
    scale = size / float(max(h, w))
    nh, nw = round(h * scale), round(w * scale)
    canvas = Image.new('RGB', (size, size), (0, 0, 0))
    canvas.paste(img.convert('RGB').resize((nw, nh), Image.BICUBIC), ((size - nw) // 2, (size - nh) // 2))
    return _to_tensor(canvas, mean, std)


def grid_choices(max_split: int) -> list[tuple[int, int]]:
    """The reference's (rows m, columns n) grid splits: m in 1..M, n in ceil(m/2)..min(2m, M)."""
    return [(m, n) for m in range(1, max_split + 1) for n in range((m + 1) // 2, min(2 * m, max_split) + 1)]


def grid_boxes(m: int, n: int) -> torch.Tensor:
    """(m*n, 4) normalised x0, y0, x1, y1 of an m x n grid, row-major."""
    ys, xs = torch.linspace(0, 1, m + 1), torch.linspace(0, 1, n + 1)
    y0, x0 = torch.meshgrid(ys[:-1], xs[:-1], indexing='ij')
    y1, x1 = torch.meshgrid(ys[1:], xs[1:], indexing='ij')
    return torch.stack([x0, y0, x1, y1], -1).view(-1, 4)


def expand_box(box: Sequence[float], factor: float, w: int, h: int) -> tuple[float, float, float, float]:
    """Scale a box about its centre by ``factor``, clipped to the image."""
    x0, y0, x1, y1 = box
    cx, cy, bw, bh = (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0
    d = 0.5 * factor
    return max(cx - bw * d, 0), max(cy - bh * d, 0), min(cx + bw * d, w), min(cy + bh * d, h)


def square_box(box: Sequence[float], factor: float, w: int, h: int) -> tuple[float, float, float, float]:
    """A square window about the box's centre, side ``factor`` times its longer side (at most the image's
    shorter side), shifted to lie inside the image: a crop that needs no padding."""
    x0, y0, x1, y1 = box
    side = min(factor * max(x1 - x0, y1 - y0), w, h)
    left = min(max((x0 + x1 - side) / 2, 0), w - side)
    top = min(max((y0 + y1 - side) / 2, 0), h - side)
    return left, top, left + side, top + side


def mask_to_grid(mask: np.ndarray, grid: int) -> torch.Tensor:
    """(grid, grid) bool: a full-resolution mask brought to the patch grid as the reference's
    evaluation does (float mask, resize longest to ``grid`` (bicubic, antialiased), pad, then > 0)."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.functional import resize
    h, w = mask.shape
    scale = grid / float(max(h, w))
    nh, nw = round(h * scale), round(w * scale)
    m = resize(torch.from_numpy(mask.astype(np.float32))[None], [nh, nw], InterpolationMode.BICUBIC)
    return F.pad(m, (0, grid - nw, 0, grid - nh))[0] > 0


@register('DATASETS', mmdet=False)
class OVCLIPSelfDataset(Dataset):
    """Images of a COCO-format file with regions for CLIPSelf.

    Modes:
        ``'grid'``: a random m x n split of each image (``grid_choices(max_split)``), at most
            ``max_boxes`` of its cells, teacher crops = the cells (``crop_scale`` enlarges them).
        ``'proposals'``: the file's boxes (e.g. region proposals, or ground truth) with
            ``min_size**2 <= area <= max_size**2``, at most ``max_boxes``; the teacher crop of a box is
            the box enlarged ``box_crop_scale`` (1.5, as the reference) about its centre.
        ``'annotations'``: for region classification: every annotated region with its class label,
            box, mask on the patch grid, is-thing flag, and the enlarged crop.

    Randomness (grid split, box subset) is a function of (seed, index): the dataset is
    ``repeats`` copies of the images, each with its own draw, so an interrupted and resumed run sees
    exactly the batches of an uninterrupted one.

    Args:
        ann_file: COCO-format json (``images``; ``annotations`` and ``categories`` for the box modes).
        img_dir: folder the ``file_name`` entries are relative to.
        mode: one of ``REGION_MODES``.
        input_size: student input side (reference: 1024 for ViT-B/16, 896 for ViT-L/14).
        crop_size: teacher input side, the CLIP's native size.
        patch_size: student patch size (for masks on the patch grid in ``'annotations'`` mode).
        max_split: largest grid split (reference: 6).
        max_boxes: cap on regions per image (reference: 6 grid, 20 proposals).
        crop_scale: grid-cell enlargement for the teacher crop (reference: 1.0).
        box_crop_scale: box enlargement for the teacher crop in ``'proposals'`` and ``'annotations'``
            modes (reference: 1.5).
        box_crop_shape: ``'box'`` (the reference): the enlarged box clipped to the image, long side
            resized, zero padding; ``'square'``: a square window of the enlarged box's longer side,
            shifted inside the image (no padding). A CLIP that never saw black bands — the synthetic world's
            tiny CLIP — classifies 1.5x box crops at 35% but square ones at 77% (README).
        min_size, max_size: proposal side limits (the area filter).
        repeats: independent random draws per image.
        seed: seed of the draws.
        mean, std: normalisation of the 0..1 images.
        proxy_size: also give each sample a ``'proxy'`` image: the image resized on its own to this side as the
            student input is (long side, zero padding right and bottom), ImageNet-normalised — DeCLIP's VFM input
            (:class:`~ovdense.models.losses.OVContextLoss` with ``reference_quirks=True``; by default the loss
            derives it from the student input). None: none.
    """

    def __init__(self, ann_file: str, img_dir: str, *, mode: str = 'grid', input_size: int = 1024,
                 crop_size: int = 224, patch_size: int = 16, max_split: int = 6, max_boxes: int = 6,
                 crop_scale: float = 1.0, box_crop_scale: float = 1.5, box_crop_shape: str = 'box',
                 min_size: float = 8.0, max_size: float = 1024.0,
                 repeats: int = 1, seed: int = 0, mean: Sequence[float] = OPENAI_MEAN, std: Sequence[float] = OPENAI_STD,
                 proxy_size: int | None = None) -> None:
        if mode not in REGION_MODES:
            raise ValueError(f"unknown region mode '{mode}'; valid: {list(REGION_MODES)}")
        if not Path(ann_file).is_file():
            raise FileNotFoundError(f'annotation file not found: {ann_file}')
        self.ann_file, self.img_dir, self.mode = ann_file, Path(img_dir), mode
        self.input_size, self.crop_size, self.patch_size = input_size, crop_size, patch_size
        self.max_split, self.max_boxes, self.crop_scale = max_split, max_boxes, crop_scale
        if box_crop_shape not in ('box', 'square'):
            raise ValueError(f"unknown box_crop_shape '{box_crop_shape}'; valid: ['box', 'square']")
        self.box_crop_scale, self.box_crop_shape = box_crop_scale, box_crop_shape
        self.min_size, self.max_size, self.repeats, self.seed = min_size, max_size, repeats, seed
        self.mean, self.std = tuple(mean), tuple(std)
        self.proxy_size = proxy_size
        data = json.loads(Path(ann_file).read_text())
        self.images = sorted(data['images'], key=lambda r: r['id'])
        cats = sorted(data.get('categories', []), key=lambda c: c['id'])
        self.cat_to_label = {c['id']: i for i, c in enumerate(cats)}
        self.metainfo = dict(classes=tuple(c['name'] for c in cats),
                             splits=tuple(c.get('split', 'base') for c in cats),
                             isthing=tuple(int(c.get('isthing', 1)) for c in cats))
        self.anns: dict[int, list[dict]] = {r['id']: [] for r in self.images}
        for a in data.get('annotations', []):
            if a['image_id'] in self.anns and not (mode == 'annotations' and a.get('iscrowd', 0)):
                self.anns[a['image_id']].append(a)
        if mode != 'grid' and not cats:
            raise ValueError(f"{ann_file} has no categories; mode '{mode}' needs annotated boxes")
        self.choices = grid_choices(max_split)

    def __len__(self) -> int:
        return len(self.images) * self.repeats

    def _load(self, rec: dict) -> Image.Image:
        path = self.img_dir / rec['file_name']
        try:
            img = Image.open(path)
            img.load()
        except FileNotFoundError:
            raise FileNotFoundError(f'image not found: {path}') from None
        except OSError as e:
            raise OSError(f'cannot read image {path}: {e}') from None
        return img.convert('RGB')

    def __getitem__(self, index: int) -> dict[str, Any]:
        rec = self.images[index % len(self.images)]
        rng = np.random.default_rng([self.seed, index])
        img = self._load(rec)
        w, h = img.size
        inputs, scale = resize_longest(img, self.input_size, mean=self.mean, std=self.std)
        crop = lambda b: resize_max_size(img.crop(tuple(b)), self.crop_size, mean=self.mean, std=self.std)  # noqa: E731
        sample: dict[str, Any] = dict(img_id=rec['id'], ori_shape=(h, w), scale=scale)
        if self.proxy_size:
            sample['proxy'] = resize_longest(img, self.proxy_size, mean=IMAGENET_MEAN, std=IMAGENET_STD)[0]
        if self.mode == 'grid':
            m, n = self.choices[int(rng.integers(len(self.choices)))]
            cells = grid_boxes(m, n)
            cells = cells[torch.from_numpy(rng.permutation(len(cells))[:self.max_boxes])]
            boxes = cells * torch.tensor([w, h, w, h], dtype=torch.float32)
            crops = [crop(expand_box(b.tolist(), self.crop_scale, w, h) if self.crop_scale > 1 else b.tolist())
                     for b in boxes]
        else:
            anns = self.anns[rec['id']]
            if self.mode == 'proposals':
                anns = [anns[i] for i in rng.permutation(len(anns))[:self.max_boxes]]
            keep = []
            for a in anns:
                bw, bh = a['bbox'][2:]
                if self.mode == 'proposals' and not self.min_size ** 2 <= bw * bh <= self.max_size ** 2:
                    continue
                keep.append(a)
            if not keep and self.mode == 'proposals':  # the reference's fallback: the top-left quarter
                keep = [dict(bbox=[0, 0, w / 4, h / 4], category_id=None)]
            boxes = torch.tensor([[a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2], a['bbox'][1] + a['bbox'][3]]
                                  for a in keep], dtype=torch.float32).view(-1, 4)
            enlarge = square_box if self.box_crop_shape == 'square' else expand_box
            crops = [crop(enlarge(b.tolist(), self.box_crop_scale, w, h)) for b in boxes]
            if self.mode == 'annotations':
                sample['labels'] = torch.tensor([self.cat_to_label[a['category_id']] for a in keep], dtype=torch.long)
                sample['masks'] = torch.stack([mask_to_grid(self._mask(a, h, w), self.input_size // self.patch_size)
                                               for a in keep]) if keep else torch.zeros(0, 1, 1, dtype=torch.bool)
        sample['boxes'] = boxes * scale / self.input_size
        sample['crops'] = torch.stack(crops) if crops else torch.zeros(0, 3, self.crop_size, self.crop_size)
        # a data element is passed through collation as is (a dict would be transposed into lists)
        return dict(inputs=inputs, data_samples=BaseDataElement(**sample))

    @staticmethod
    def _mask(ann: dict, h: int, w: int) -> np.ndarray:
        from pycocotools import mask as mask_utils
        seg = ann.get('segmentation')
        if not seg:  # no mask: the box
            m = np.zeros((h, w), bool)
            x, y, bw, bh = ann['bbox']
            m[int(y):int(np.ceil(y + bh)), int(x):int(np.ceil(x + bw))] = True
            return m
        if isinstance(seg, list):
            rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
        elif isinstance(seg['counts'], list):
            rle = mask_utils.frPyObjects(seg, h, w)
        else:
            rle = seg
        return mask_utils.decode(rle).astype(bool)
