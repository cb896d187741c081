"""CAT-Seg (Cho et al., CVPR 2024) as an mmseg 1.x segmentor: CLIP dense features -> cost volume with the vocabulary's
text embeddings -> :class:`~ovdense.models.decode_heads.OVCATSegHead`, the CLIP's attention fine-tuned."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.models.segmentors.base import BaseSegmentor
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from ...clip import CLIPModel
from ...registry import register
from ...vocabulary import Vocabulary
from ..text import ClassEmbeddings, TextSideMixin, build_text_encoder

INFERENCE_MODES = ('slide', 'whole')


@register('MODELS', mmdet=False)
class OVCATSeg(TextSideMixin, BaseSegmentor):
    """CAT-Seg: every CLIP input is resized to ``clip_resolution``; the backbone (:class:`OVCLIPViT` with
    ``out_indices`` = the two guidance blocks, method ``OVMaskCLIP``) gives their outputs and the dense map; the head
    turns them and the class embeddings ((T, 1, D), one template) into (B, T, 4h, 4w) logits; a class's probability is
    their sigmoid.

    Training: binary cross-entropy of every class's logit (resized to the label map) against its one-hot label; pixels
    labelled ``ignore_index`` are left out (the reference counts them as negatives of every class:
    ``reference_quirks=True``). The CLIP's attention q and v weights train (both towers), everything else of it stays
    frozen; classes named in ``unseen`` are left out of the training vocabulary and their pixels ignored.

    Inference (``test_cfg.mode``): ``'slide'`` (the reference's evaluation): the image squashed to ``slide_size``, 4
    windows of ``clip_resolution`` with overlap ``slide_overlap`` plus the whole image squashed to
    ``clip_resolution``; the windows' sigmoid maps averaged where they overlap, then averaged with the global one.
    ``'whole'``: the image resized to ``clip_resolution`` (the reference pads it to a multiple of 32 first and stretches
    the padded band into the output: ``reference_quirks=True``).

    Args:
        backbone: :class:`OVCLIPViT` config (``frozen=False``: the attention fine-tuning decides what trains).
        decode_head: :class:`OVCATSegHead` config.
        text_encoder: :class:`OVTextEncoder` config (CAT-Seg: ``templates=['A photo of a {} in the scene']``,
            ``synonyms='first'``, ``trainable=True``).
        clip_resolution: the CLIP's input side(s) (ViT-B/16: 384, ViT-L/14: 336: a 24 x 24 grid).
        finetune: attention projections of the CLIP trained (``'qv'``; ``''`` freezes the CLIP).
        unseen: class names left out of training.
        slide_size, slide_window, slide_overlap: the sliding protocol's canvas, window side and window overlap
            (640, 384, 0.333: the reference's signature defaults for every CLIP; each window is then resized to
            ``clip_resolution``).
        crop_batch: crops aggregated at once in the sliding protocol (None: all 5); the memory knob: the aggregator's
            activations grow with crops x kept classes (at most ``pad_len``: the class attention always sees
            ``pad_len`` tokens, padded or the best ``pad_len`` classes of each crop), so 1 bounds them by one crop
            whatever the vocabulary, with the same result.
        class_chunk: classes assembled at once after the head (the windows' up-sampled probabilities are crops x
            classes x window pixels: 2.5 GB for 847 classes at once); the same result.
        reference_quirks: the reference's ignored-pixel negatives and whole-image padding.
    """

    def __init__(self, backbone: dict, decode_head: dict, *, text_encoder: dict,
                 clip_resolution: int | Sequence[int] = 384, finetune: str = 'qv', unseen: Sequence[str] = (),
                 slide_size: int | Sequence[int] = 640, slide_window: int | Sequence[int] = 384,
                 slide_overlap: float = 0.333, crop_batch: int | None = None, class_chunk: int = 64,
                 ignore_index: int = 255,
                 reference_quirks: bool = False, train_cfg: dict | None = None, test_cfg: dict | None = None,
                 data_preprocessor: dict | None = None, init_cfg: dict | None = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.decode_head = MODELS.build(decode_head)
        self.text_encoder = build_text_encoder(text_encoder)
        self.clip_resolution = _pair(clip_resolution)
        self.slide_size = _pair(slide_size)
        self.slide_window = _pair(slide_window)
        self.slide_overlap = float(slide_overlap)
        if crop_batch is not None and crop_batch < 1:
            raise ValueError(f'crop_batch must be None or >= 1, got {crop_batch}')
        self.crop_batch = crop_batch
        self.class_chunk = int(class_chunk)
        self.ignore_index = ignore_index
        self.reference_quirks = reference_quirks
        self.train_cfg = train_cfg or {}
        self.test_cfg = dict(dict(mode='slide'), **(test_cfg or {}))
        if self.test_cfg['mode'] not in INFERENCE_MODES:
            raise ValueError(f"unknown CAT-Seg inference mode '{self.test_cfg['mode']}'; valid: {list(INFERENCE_MODES)}")
        if len(self.backbone.out_indices) != 2:
            raise ValueError(f'CAT-Seg takes its decoder guidance from 2 CLIP blocks: give the backbone 2 out_indices, '
                             f'got {list(self.backbone.out_indices)}')
        self.finetuned = self.backbone.clip.finetune_attention(finetune) if finetune else []
        if not finetune:
            self.backbone.clip.requires_grad_(False)
        self.unseen = tuple(unseen)
        if self.text_encoder.has_vocabulary:
            missing = set(self.unseen) - set(self.vocabulary.names)
            if missing:
                raise ValueError(f'unseen classes {sorted(missing)} are not in the vocabulary {self.vocabulary.names}')

    @property
    def text_clip(self) -> CLIPModel:
        return self.backbone.clip

    @property
    def align_corners(self) -> bool:  # mmseg's postprocess_result reads it
        return False

    def init_weights(self) -> None:
        super().init_weights()
        self.backbone.init_weights()

    # --------------------------------------------------------------- forward
    def extract_feat(self, inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(guidance block 0, guidance block 1, dense map) of (B, 3, H, W) normalised images, each resized to
        ``clip_resolution`` first."""
        x = F.interpolate(inputs, size=self.clip_resolution, mode='bilinear', align_corners=False)
        return self.backbone(x)

    def logits(self, inputs: torch.Tensor, text: ClassEmbeddings) -> torch.Tensor:
        """(B, T, 4h, 4w) logits of normalised images (B, 3, H, W) for the class embeddings: T = their queries, then
        their background names' (the text encoder's ``background=[...]``: aggregated with the classes, as CAT-Seg's
        PAS-20b protocol appends them to the 20 classes)."""
        g0, g1, dense = self.extract_feat(inputs)
        queries = text.queries if text.background is None else torch.cat([text.queries, text.background])
        return self.decode_head(dense, [g0, g1], queries[:, None].to(dense.dtype))

    def label_names(self, vocabulary: Vocabulary) -> tuple[str, ...]:
        return (('background',) if self.text_encoder.background_names else ()) + tuple(vocabulary.names)

    @staticmethod
    def class_scores(probs: torch.Tensor, text: ClassEmbeddings) -> torch.Tensor:
        """(T, H, W) query probabilities -> (K, H, W) class scores: the max over each class's names, with background
        names the max over them first (label 0, as mmseg's VOC; the reference's evaluator maps every prediction
        beyond the 20 classes to background, the same argmax)."""
        q = len(text.queries)
        scores = text.reduce(probs[:q], dim=0)
        if text.background is not None:
            scores = torch.cat([probs[q:].amax(0, keepdim=True), scores])
        return scores

    def encode_decode(self, inputs: torch.Tensor, batch_img_metas: list[dict]) -> torch.Tensor:
        return self.logits(inputs, self.class_embeddings(self.sample_vocabulary(batch_img_metas)))

    def _forward(self, inputs: torch.Tensor, data_samples: list | None = None) -> torch.Tensor:
        return self.logits(inputs, self.class_embeddings(self.sample_vocabulary(data_samples)))

    # ---------------------------------------------------------------- train
    def loss(self, inputs: torch.Tensor, data_samples: list[SegDataSample]) -> dict[str, torch.Tensor]:
        names = self.vocabulary.names
        keep = [i for i, n in enumerate(names) if n not in self.unseen]
        vocab = Vocabulary(tuple(self.vocabulary.classes[i] for i in keep), source='seen classes') \
            if len(keep) != len(names) else None
        remap = torch.full((max(len(names), self.ignore_index + 1),), self.ignore_index, dtype=torch.long)
        remap[keep] = torch.arange(len(keep))
        text = self.class_embeddings(vocab)
        if text.background is not None:
            raise ValueError('OVCATSeg trains without background names (they are an evaluation protocol, PAS-20b)')
        logits = self.logits(inputs, text)
        target = torch.stack([s.gt_sem_seg.data[0] for s in data_samples]).long().to(logits.device)
        target = remap.to(target.device)[target.clamp(0, len(remap) - 1)]
        logits = F.interpolate(logits, size=target.shape[-2:], mode='bilinear', align_corners=False)
        valid = target != self.ignore_index
        onehot = F.one_hot(target.masked_fill(~valid, 0), logits.shape[1]).permute(0, 3, 1, 2).to(logits.dtype)
        onehot = onehot * valid[:, None]
        loss = F.binary_cross_entropy_with_logits(logits, onehot, reduction='none')
        if self.reference_quirks:  # ignored pixels are negatives of every class
            return dict(loss_sem_seg=loss.mean())
        mask = valid[:, None].expand_as(loss)
        return dict(loss_sem_seg=(loss * mask).sum() / mask.sum().clamp(min=1))

    # ------------------------------------------------------------- inference
    @torch.no_grad()
    def inference(self, image: torch.Tensor, text: ClassEmbeddings) -> torch.Tensor:
        """(T, H', W') class probabilities of one normalised image (3, H, W), covering the image: H' x W' =
        ``slide_size`` (slide) or the head's 4h x 4w output (whole)."""
        if self.test_cfg['mode'] == 'whole':
            x = image[None]
            if self.reference_quirks:  # zero padding (normalised space) to a multiple of 32, stretched into the output
                x = F.pad(x, (0, -x.shape[-1] % 32, 0, -x.shape[-2] % 32))
            return self.logits(x, text).sigmoid()[0]  # (T, 4h, 4w): resized once, to the original size
        k = self.slide_window
        stride = (int(k[0] * (1 - self.slide_overlap)), int(k[1] * (1 - self.slide_overlap)))
        canvas = F.interpolate(image[None], size=self.slide_size, mode='bilinear', align_corners=False)
        windows = F.unfold(canvas, k, stride=stride)  # (1, 3*kh*kw, L)
        crops = windows[0].T.reshape(-1, 3, *k)
        crops = torch.cat([crops, F.interpolate(image[None], size=k, mode='bilinear', align_corners=False)])
        n = self.crop_batch or len(crops)
        logits = torch.cat([self.logits(crops[i:i + n], text) for i in range(0, len(crops), n)])
        fold = lambda t: F.fold(t, self.slide_size, k, stride=stride)  # noqa: E731
        count = fold(F.unfold(torch.ones(1, 1, *self.slide_size, device=logits.device), k, stride=stride))
        out = logits.new_empty((logits.shape[1], *self.slide_size))
        for c in range(0, logits.shape[1], self.class_chunk):  # per-class work: (crops, chunk, k, k) at a time
            probs = F.interpolate(logits[:, c:c + self.class_chunk], size=k, mode='bilinear',
                                  align_corners=False).sigmoid()
            glob = F.interpolate(probs[-1:], size=self.slide_size, mode='bilinear', align_corners=False)[0]
            out[c:c + self.class_chunk] = (fold(probs[:-1].flatten(1).T[None])[0] / count[0] + glob) / 2
        return out

    def predict(self, inputs: torch.Tensor, data_samples: list[SegDataSample] | None = None) -> list[SegDataSample]:
        metas = [s.metainfo for s in data_samples] if data_samples else [
            dict(ori_shape=inputs.shape[-2:], img_shape=inputs.shape[-2:])] * len(inputs)
        text = self.class_embeddings(self.sample_vocabulary(metas))
        out = []
        for i, meta in enumerate(metas):
            h, w = meta.get('img_shape', inputs.shape[-2:])[:2]
            probs = self.inference(inputs[i, :, :h, :w], text)
            probs = F.interpolate(probs[None], size=meta['ori_shape'][:2], mode='bilinear', align_corners=False)[0]
            probs = self.class_scores(probs, text)
            sample = data_samples[i] if data_samples else SegDataSample(metainfo=meta)
            sample.set_data(dict(seg_logits=PixelData(data=probs), pred_sem_seg=PixelData(data=probs.argmax(0, keepdim=True))))
            out.append(sample)
        return out


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, (int, float)) else (int(v[0]), int(v[1]))


def reference_name(name: str) -> tuple[str, int | None]:
    """Our name of a reference CAT-Seg parameter (``CATSeg.state_dict()`` names), and for the CLIP's split q / k / v
    weights the row block (0, 1, 2) of our packed ``in_proj_weight`` they are (None otherwise)."""
    clip = 'sem_seg_head.predictor.clip_model.'
    if name.startswith(clip):
        ours = 'backbone.clip.model.' + name[len(clip):]
        for i, part in enumerate('qkv'):
            if ours.endswith(f'.attn.{part}_proj_weight'):
                return ours[:-len(f'{part}_proj_weight')] + 'in_proj_weight', i
        return ours, None
    head = 'sem_seg_head.predictor.transformer.'
    if name.startswith(head):
        return 'decode_head.transformer.' + name[len(head):], None
    return 'decode_head.' + name, None  # upsample1 / upsample2


def from_reference_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A CAT-Seg checkpoint (the reference's ``CATSeg.state_dict()`` names) in :class:`OVCATSeg`'s names
    (:func:`reference_name`), the split q / k / v weights packed back into ``in_proj_weight``."""
    out: dict[str, torch.Tensor] = {}
    packed: dict[str, dict[int, torch.Tensor]] = {}
    for k, v in state.items():
        name, part = reference_name(k)
        if part is None:
            out[name] = v
        else:
            packed.setdefault(name, {})[part] = v
    for name, parts in packed.items():
        out[name] = torch.cat([parts[0], parts[1], parts[2]])
    return out
