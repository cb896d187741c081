"""Two augmented views of a generated scene, for self-supervised pretraining of a vision foundation model."""
from __future__ import annotations

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ..registry import register
from .synthetic import WorldConfig, generate


@register('DATASETS', mmdet=False)
class OVSyntheticViewsDataset(Dataset):
    """Scenes of the synthetic world (no labels used), each returned as two random views.

    A view is a random crop (area ``scale`` of the scene, aspect ratio 3/4-4/3) resized to ``view_size``,
    flipped with probability 0.5, colour-jittered (brightness, contrast, saturation, a channel shuffle)
    and shown in grey levels with probability ``gray_prob``. Its ``box`` (x0, y0, x1, y1, in [0, 1] of
    the scene, x0 > x1 when flipped) says where it was cut, so that the model can find which patches of
    the two views show the same place. Scenes are generated on access (deterministic per index and epoch).

    Args:
        num_images: scenes per epoch.
        seed: world seed (keep it apart from the held-out seeds).
        image_size: scene side.
        view_size: view side.
        scale: (min, max) area fraction of a crop.
        gray_prob: probability of a grey view.
    """

    def __init__(self, num_images: int, seed: int, *, image_size: int = 128, view_size: int = 96,
                 scale: tuple[float, float] = (0.3, 1.0), gray_prob: float = 0.2) -> None:
        if not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(f'scale must be (min, max) with 0 < min <= max <= 1, got {scale}')
        self.num_images, self.seed = num_images, seed
        self.world = WorldConfig(size=image_size)
        self.view_size, self.scale, self.gray_prob = view_size, tuple(scale), gray_prob
        self.epoch = 0

    def __len__(self) -> int:
        return self.num_images

    def _view(self, img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        n = img.shape[0]
        area = rng.uniform(*self.scale) * n * n
        ratio = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        w = int(min(n, round(np.sqrt(area * ratio))))
        h = int(min(n, round(np.sqrt(area / ratio))))
        x0, y0 = int(rng.integers(0, n - w + 1)), int(rng.integers(0, n - h + 1))
        view = cv2.resize(img[y0:y0 + h, x0:x0 + w], (self.view_size, self.view_size), interpolation=cv2.INTER_LINEAR)
        box = np.array([x0, y0, x0 + w, y0 + h], np.float32) / n
        if rng.random() < 0.5:
            view, box = view[:, ::-1], box[[2, 1, 0, 3]]
        v = view.astype(np.float32)
        v = (v - v.mean()) * rng.uniform(0.6, 1.4) + v.mean() * rng.uniform(0.6, 1.4)  # contrast, brightness
        gray = v @ np.array([0.299, 0.587, 0.114], np.float32)
        if rng.random() < self.gray_prob:
            v = np.repeat(gray[..., None], 3, 2)
        else:
            v = gray[..., None] + (v - gray[..., None]) * rng.uniform(0.5, 1.5)  # saturation
            if rng.random() < 0.5:
                v = v[..., rng.permutation(3)]  # hue: colours are not what tells objects apart
        return np.clip(v, 0, 255).astype(np.uint8), box

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng([self.seed, index, self.epoch])
        self.epoch += 1  # a different pair of views at every access
        img = generate(self.seed, index, self.world).image
        (a, box_a), (b, box_b) = self._view(img, rng), self._view(img, rng)
        views = torch.from_numpy(np.ascontiguousarray(np.stack([a, b]))).permute(0, 3, 1, 2)
        return dict(inputs=views, data_samples=torch.from_numpy(np.stack([box_a, box_b])))
