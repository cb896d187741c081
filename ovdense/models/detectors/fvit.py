"""F-ViT open-vocabulary detection on mmdet 3.x: a frozen CLIP ViT as a feature pyramid, a box head
whose classifier is the text embedding of the vocabulary, and VLM score fusion with the CLIP dense map.

The backbone (:class:`~ovdense.models.backbones.OVFViTBackbone`) and the box head
(:class:`~ovdense.models.roi_heads.OVTextBBoxHead`) are plain mmdet modules: a stock Faster / Mask R-CNN config becomes
open-vocabulary by swapping them in. :class:`OVFViT` adds the VLM score fusion, which needs the
backbone's dense CLIP map at the RoI head.
"""
from __future__ import annotations

import torch
from mmdet.models.detectors import TwoStageDetector

from ...clip import CLIPModel
from ...registry import register
from ..text import TextSideMixin, build_text_encoder


@register('MODELS', mmseg=False)
class OVFViT(TextSideMixin, TwoStageDetector):
    """F-ViT: two-stage detector over :class:`OVFViTBackbone` whose classes come from its text encoder
    (:class:`~ovdense.models.text.OVTextEncoder`, embedded with the backbone's CLIP, with a learnt
    background), passed to the :class:`OVFViTRoIHead` as arguments. With ``with_dense=True`` the dense CLIP
    map goes to the RoI head for VLM score fusion, the pyramid to the neck.

    Args:
        text_encoder: :class:`~ovdense.models.text.OVTextEncoder` config (``background='learnt'`` and
            ``embed_dim`` default to the CLIP's).
        **kwargs: mmdet ``TwoStageDetector`` arguments.
    """

    def __init__(self, *, text_encoder: dict, **kwargs) -> None:
        super().__init__(**kwargs)
        self.text_encoder = build_text_encoder(text_encoder, background='learnt', embed_dim=self.text_clip.embed_dim)

    @property
    def text_clip(self) -> CLIPModel:
        return self.backbone.vit.clip

    def _features(self, inputs: torch.Tensor) -> tuple[tuple, torch.Tensor | None]:
        feats = self.backbone(inputs)
        dense = None
        if getattr(self.backbone, 'with_dense', False):
            feats, dense = feats[:-1], feats[-1]
        return (self.neck(feats) if self.with_neck else feats), dense

    def extract_feat(self, batch_inputs: torch.Tensor) -> tuple:
        return self._features(batch_inputs)[0]

    def loss(self, batch_inputs: torch.Tensor, batch_data_samples: list) -> dict:
        with self.roi_head.inputs(self.class_embeddings()):
            return super().loss(batch_inputs, batch_data_samples)

    def predict(self, batch_inputs: torch.Tensor, batch_data_samples: list, rescale: bool = True) -> list:
        x, dense = self._features(batch_inputs)
        if batch_data_samples[0].get('proposals', None) is None:
            rpn_results_list = self.rpn_head.predict(x, batch_data_samples, rescale=False)
        else:
            rpn_results_list = [s.proposals for s in batch_data_samples]
        vocabulary = self.sample_vocabulary(batch_data_samples)
        with self.roi_head.inputs(self.class_embeddings(vocabulary), dense):
            results = self.roi_head.predict(x, rpn_results_list, batch_data_samples, rescale=rescale)
        if vocabulary is not None:  # the call's own classes: named per box (DetLocalVisualizer draws label_names)
            for res in results:
                res.label_names = [vocabulary.names[int(i)] for i in res.labels]
        return self.add_pred_to_datasample(batch_data_samples, results)
