"""Zero-shot evaluation of a CLIP on held-out scenes of the synthetic world."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..clip import CLIPModel
from ..datasets.synthetic import (NOVEL_CLASSES, OBJECT_CLASSES, STUFF_CLASSES, WorldConfig, generate,
                                  semantic_classes)
from ..models.text import encode_queries
from ..vocabulary import Vocabulary

CLIP_MEAN = torch.tensor([122.771, 116.746, 104.094]).view(1, 3, 1, 1)
CLIP_STD = torch.tensor([68.501, 66.632, 70.323]).view(1, 3, 1, 1)


def to_input(images: Sequence[np.ndarray]) -> torch.Tensor:
    """(B, 3, H, W) normalised float from RGB uint8 images."""
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()
    return (x - CLIP_MEAN) / CLIP_STD


@torch.no_grad()
def image_zero_shot(clip: CLIPModel, *, seed: int = 1000, num_images: int = 600, image_size: int = 128,
                    templates: Sequence[str] = ('a picture with a {}.', 'a photo of a {}.')) -> dict[str, float]:
    """Image-level zero-shot classification over the object classes, and image->text retrieval.

    Classification: single-object held-out scenes, the class with the most similar prompt wins;
    reported as mean per-class top-1 accuracy (chance 1/12); ``crop_top1``: the same on each object's
    box enlarged 1.5x, cut out and resized to the native size (what CLIPSelf's teacher and the crop path
    of region classification see), so a CLIP that only knows one rendering scale shows here;
    ``crop_square_top1``: the same on square windows inside the image (no zero padding).
    Retrieval: multi-object scenes against their own 'full' captions (colour, size, texture, shape,
    stuff), R@1.
    """
    from PIL import Image

    from ..datasets.clipself import expand_box, resize_max_size, square_box
    clip.eval()
    single = [generate(seed, i, WorldConfig(size=image_size, min_objects=1, max_objects=1)) for i in range(num_images)]
    single = [s for s in single if s.objects]
    text = encode_queries(clip, OBJECT_CLASSES, templates)
    gt = np.array([OBJECT_CLASSES.index(s.objects[0].cls) for s in single])

    def per_class_top1(x: torch.Tensor) -> dict[str, float]:
        """(N, 3, S, S) inputs, one per scene -> top-1 accuracy of each class present."""
        feats = torch.cat([clip.encode_image(x[i:i + 128], normalize=True) for i in range(0, len(x), 128)])
        pred = (feats @ text.t()).argmax(1).numpy()
        return {c: float((pred[gt == k] == k).mean()) for k, c in enumerate(OBJECT_CLASSES) if (gt == k).any()}

    per_class = per_class_top1(to_input([s.image for s in single]))
    def crop_top1(enlarge) -> float:
        crops = torch.stack([resize_max_size(Image.fromarray(s.image).crop(enlarge(s.objects[0].box, 1.5, image_size,
                                                                                   image_size)), image_size)
                             for s in single])
        return float(np.mean(list(per_class_top1(crops).values())))
    multi = [generate(seed + 1, i, WorldConfig(size=image_size)) for i in range(min(num_images, 256))]
    caps = [s.captions[0] for s in multi]
    img = clip.encode_image(to_input([s.image for s in multi]), normalize=True)
    txt = clip.encode_text(caps, normalize=True)
    r1 = float(((img @ txt.t()).argmax(1) == torch.arange(len(multi))).float().mean())
    return dict(top1=float(np.mean(list(per_class.values()))), crop_top1=crop_top1(expand_box),
                crop_square_top1=crop_top1(square_box), retrieval_r1=r1,
                **{f'acc_{c}': v for c, v in per_class.items()})


@torch.no_grad()
def dense_zero_shot(clip: CLIPModel, method: str | dict, *, seed: int = 2000, num_images: int = 100, image_size: int = 128,
                    logit_scale: float = 40.0, templates: Sequence[str] = ('a picture with a {}.',),
                    batch_size: int = 16) -> dict[str, float]:
    """Training-free zero-shot segmentation of held-out scenes with one dense method (a registered method's
    short name, or its config ``dict(type=..., **knobs)``).

    The vocabulary holds every stuff and object class (novel ones included). Returns per-class IoU
    (%), and mIoU over base objects, novel objects and stuff.
    """
    from ..models import OVCLIPViT, OVSegmentor
    from ..models.methods import registered_methods
    if isinstance(method, str):
        method = dict(type=registered_methods()[method].__name__)
    text = dict(vocabulary=Vocabulary.from_list(list(semantic_classes())), templates=list(templates))
    seg = OVSegmentor(OVCLIPViT(clip, method), text, logit_scale=logit_scale, slide_crop=0).eval()
    n = len(semantic_classes())
    inter, union = np.zeros(n), np.zeros(n)
    scenes = [generate(seed, i, WorldConfig(size=image_size)) for i in range(num_images)]
    for i in range(0, num_images, batch_size):
        chunk = scenes[i:i + batch_size]
        metas = [dict(img_shape=(image_size, image_size), ori_shape=(image_size, image_size))] * len(chunk)
        for s, res in zip(chunk, seg.inference(to_input([s.image for s in chunk]), metas)):
            pred, gt = res['label'][0].numpy(), s.semantic
            valid = gt != 255
            for k in range(n):
                p, g = (pred == k) & valid, (gt == k) & valid
                inter[k] += (p & g).sum()
                union[k] += (p | g).sum()
    iou = {c: 100 * inter[k] / union[k] for k, c in enumerate(semantic_classes()) if union[k] > 0}
    def mean(names):
        vals = [iou[c] for c in names if c in iou]
        return float(np.mean(vals)) if vals else float('nan')
    base = [c for c in OBJECT_CLASSES if c not in NOVEL_CLASSES]
    return dict(mIoU_base=mean(base), mIoU_novel=mean(NOVEL_CLASSES), mIoU_stuff=mean(STUFF_CLASSES),
                **{f'IoU_{c}': float(v) for c, v in iou.items()})
