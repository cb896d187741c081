"""Training-free open-vocabulary semantic segmentation with a dense CLIP backbone."""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.models.segmentors import BaseSegmentor
from mmseg.registry import MODELS as MMSEG_MODELS

from ...registry import register
from ...vocabulary import TextEmbeddingCache, Vocabulary
from ..utils import PAMR, slide_windows

WINDOW_PADDING = ('none', 'symmetric')


@register('MODELS', mmdet=False)
class OVSegmentor(BaseSegmentor):
    """Segment images into the classes of a vocabulary by patch-text cosine similarity.

    Pipeline: per window (or the whole image) the backbone's normalised patch embeddings are
    matched with the vocabulary's text embeddings (cosine), upsampled bilinearly to the window,
    averaged over overlapping windows, resized to the original image size, optionally refined by
    PAMR, then turned into class probabilities: ``softmax(logit_scale * cos)`` over the text
    queries, max over each class's synonyms, optional area rule, argmax, and pixels whose top
    probability is below ``prob_thd`` get ``background_index``.

    Args:
        backbone: config of an :class:`OVCLIPViT` (or any module with ``dense_features``).
        vocabulary: the classes: a :class:`Vocabulary`, ``dict(dataset=...)``, ``dict(file=...)``,
            ``dict(names=[...])`` or a list of names. Can be changed later by ``set_vocabulary``.
        templates: prompt templates (strings with ``{}``) or a set name (``'openai'``, ``'simple'``,
            ``'maskclip'``, ``'none'``).
        logit_scale: multiplier of the cosine logits before the softmax.
        prob_thd: pixels whose top class probability is below it get ``background_index``.
        area_thd: SCLIP's area rule: classes other than ``background_index`` whose argmax area is at
            most this fraction of the total foreground area get probability 0. None: off.
        background_index: the class low-confidence pixels fall back to.
        slide_crop: window side (0: one forward on the whole image).
        slide_stride: window stride.
        window_batch: windows per backbone forward.
        window_padding: ``'symmetric'`` zero-pads windows to a multiple of the patch size (ClearCLIP);
            ``'none'`` lets the patch conv drop leftover pixels.
        pamr: ``dict(num_iter=10, dilations=(8, 16))`` to refine with PAMR, or None.
        renormalize: renormalise class probabilities to sum to 1 after the argmax (NACLIP).
        text_cache_dir: folder to cache text embeddings on disk (None: memory only).
        data_preprocessor: mmseg data preprocessor config.
        init_cfg: mmengine init config.
    """

    def __init__(self, backbone: dict, vocabulary: Any = None, *, templates: str | Sequence[str] = 'openai',
                 logit_scale: float = 40.0, prob_thd: float = 0.0, area_thd: float | None = None,
                 background_index: int = 0, slide_crop: int = 224, slide_stride: int = 112,
                 window_batch: int = 8, window_padding: str = 'none', pamr: dict | None = None,
                 renormalize: bool = False, text_cache_dir: str | None = None,
                 data_preprocessor: dict | None = None, init_cfg: dict | None = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if window_padding not in WINDOW_PADDING:
            raise ValueError(f"unknown window_padding '{window_padding}'; valid: {list(WINDOW_PADDING)}")
        if slide_crop > 0 and slide_stride <= 0:
            raise ValueError(f'slide_stride must be positive with slide_crop={slide_crop}')
        self.backbone = MMSEG_MODELS.build(backbone) if isinstance(backbone, dict) else backbone
        self.templates = templates
        self.logit_scale = float(logit_scale)
        self.prob_thd = float(prob_thd)
        self.area_thd = area_thd
        self.background_index = background_index
        self.slide_crop = slide_crop
        self.slide_stride = slide_stride
        self.window_batch = window_batch
        self.window_padding = window_padding
        self.pamr = PAMR(**pamr) if pamr else None
        self.renormalize = renormalize
        self.text_cache = TextEmbeddingCache(text_cache_dir)
        self.vocabulary: Vocabulary | None = None
        if vocabulary is not None:
            self.set_vocabulary(vocabulary)

    # -------------------------------------------------------------- vocabulary
    def set_vocabulary(self, vocabulary: Any) -> None:
        """Change the classes (no rebuild; text embeddings are computed lazily and cached)."""
        self.vocabulary = Vocabulary.coerce(vocabulary)

    def _templates(self) -> Sequence[str]:
        if isinstance(self.templates, str):
            from ...clip import prompt_templates
            return prompt_templates(self.templates)
        return self.templates

    def text_embeddings(self, vocabulary: Vocabulary | None = None) -> torch.Tensor:
        """(Q, D) normalised query embeddings of the vocabulary, on the model's device."""
        vocab = vocabulary or self.vocabulary
        if vocab is None:
            raise ValueError('no vocabulary: pass vocabulary= to the model config or call set_vocabulary()')
        emb = self.text_cache.get(self.backbone.clip, vocab, self._templates())
        return emb.to(self.backbone.clip.logit_scale.device)

    # --------------------------------------------------------------- inference
    def patch_logits(self, images: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """(n, Q, h, w) cosine similarities of patches and queries for (n, 3, H, W) images."""
        feats = self.backbone.dense_features(images, normalize=True)
        return torch.einsum('ndhw,qd->nqhw', feats, text.to(feats.dtype))

    def _window_logits(self, crops: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """(n, Q, ch, cw) logits upsampled to the window size."""
        H, W = crops.shape[-2:]
        pad = (0, 0, 0, 0)
        if self.window_padding == 'symmetric':
            p = self.backbone.patch_size
            ph, pw = -H % p, -W % p
            pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
            crops = F.pad(crops, pad)
        logits = F.interpolate(self.patch_logits(crops, text), size=crops.shape[-2:], mode='bilinear',
                               align_corners=False)
        return logits[..., pad[2]:pad[2] + H, pad[0]:pad[0] + W]

    def encode_image(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """(Q, H, W) cosine logits at input resolution for one normalised image (3, H, W)."""
        H, W = image.shape[-2:]
        if self.slide_crop <= 0:
            return self._window_logits(image[None], text)[0]
        windows = slide_windows(H, W, self.slide_crop, self.slide_stride)
        out = image.new_zeros((text.shape[0], H, W))
        count = image.new_zeros((1, H, W))
        for i in range(0, len(windows), self.window_batch):  # batched windows, merged chunk by chunk
            chunk = windows[i:i + self.window_batch]
            crops = torch.stack([image[:, y1:y2, x1:x2] for y1, x1, y2, x2 in chunk])
            for (y1, x1, y2, x2), lg in zip(chunk, self._window_logits(crops, text)):
                out[:, y1:y2, x1:x2] += lg
                count[:, y1:y2, x1:x2] += 1
        return out / count

    def postprocess(self, logits: torch.Tensor, query_to_class: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cosine logits (Q, H, W) -> class probabilities (C, H, W) and labels (1, H, W)."""
        probs = torch.softmax(logits * self.logit_scale, 0)
        num_classes = int(query_to_class.max()) + 1
        if num_classes != probs.shape[0]:
            idx = query_to_class.to(probs.device).view(-1, 1, 1).expand_as(probs)
            probs = probs.new_full((num_classes, *probs.shape[1:]), float('-inf')).scatter_reduce(
                0, idx, probs, reduce='amax')
        if self.area_thd is not None:
            hard = F.one_hot(probs.argmax(0), num_classes).sum((0, 1)).to(probs.dtype)
            fg = torch.ones(num_classes, dtype=torch.bool, device=probs.device)
            fg[self.background_index] = False
            keep = (hard > self.area_thd * hard[fg].sum()) | ~fg
            probs = probs * keep.to(probs.dtype).view(-1, 1, 1)
        top, label = probs.max(0, keepdim=True)
        label[top < self.prob_thd] = self.background_index
        if self.renormalize:
            probs = probs / probs.sum(0, keepdim=True)
        return probs, label

    @torch.no_grad()
    def inference(self, inputs: torch.Tensor, batch_img_metas: Sequence[dict], *,
                  vocabulary: Vocabulary | None = None, return_raw: bool = False) -> list[dict[str, torch.Tensor]]:
        """Segment a batch.

        Args:
            inputs: (B, 3, H, W) normalised images (padded; each meta's ``img_shape`` is its valid part).
            batch_img_metas: per image ``img_shape`` and ``ori_shape``.
            vocabulary: classes for this call (default: the model's).
            return_raw: also return ``logits`` (Q, H0, W0) before post-processing (after PAMR) and
                ``logits_pre_pamr``.

        Returns:
            per image a dict with ``probs`` (C, H0, W0) and ``label`` (1, H0, W0).
        """
        vocab = vocabulary or self.vocabulary
        text = self.text_embeddings(vocab)
        q2c = vocab.query_to_class
        results = []
        for img, meta in zip(inputs, batch_img_metas):
            h, w = meta.get('img_shape', img.shape[-2:])[:2]
            img = img[:, :h, :w]
            ori = tuple(meta.get('ori_shape', (h, w))[:2])
            logits = F.interpolate(self.encode_image(img, text)[None], size=ori, mode='bilinear',
                                   align_corners=False)
            pre_pamr = logits
            if self.pamr is not None:
                guide = F.interpolate(img[None], size=ori, mode='bilinear', align_corners=False)
                logits = self.pamr(guide, logits)
            probs, label = self.postprocess(logits[0], q2c)
            res = dict(probs=probs, label=label)
            if return_raw:
                res.update(logits=logits[0], logits_pre_pamr=pre_pamr[0])
            results.append(res)
        return results

    def init_weights(self) -> None:
        """Load the backbone's CLIP weights (nothing else here has weights)."""
        self.backbone.init_weights()

    # ------------------------------------------------------- mmseg interface
    def predict(self, inputs: torch.Tensor, data_samples: list | None = None) -> list:
        from mmseg.structures import SegDataSample
        if data_samples is None:
            data_samples = [SegDataSample(metainfo=dict(img_shape=inputs.shape[2:], ori_shape=inputs.shape[2:]))
                            for _ in range(inputs.shape[0])]
        results = self.inference(inputs, [s.metainfo for s in data_samples])
        for sample, res in zip(data_samples, results):
            sample.set_data(dict(seg_logits=PixelData(data=res['probs']), pred_sem_seg=PixelData(data=res['label'])))
        return data_samples

    def extract_feat(self, inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.backbone(inputs)

    def encode_decode(self, inputs: torch.Tensor, batch_img_metas: list[dict]) -> torch.Tensor:
        """(B, Q, H, W) cosine logits at input resolution."""
        text = self.text_embeddings()
        return torch.stack([self.encode_image(img, text) for img in inputs])

    def _forward(self, inputs: torch.Tensor, data_samples: list | None = None) -> torch.Tensor:
        return self.encode_decode(inputs, [])

    def loss(self, inputs: torch.Tensor, data_samples: list) -> dict:
        raise NotImplementedError('OVSegmentor is training-free; train OVEncoderDecoder / DenseCLIP instead')
