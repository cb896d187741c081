"""F-ViT open-vocabulary detection: backbone pyramid, text box head, VLM fusion, plug-in config."""
from pathlib import Path

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData
from torchvision.ops import roi_align

import ovdense.detection  # noqa: F401  (registers the detection modules)
from ovdense.models import OVFViTBackbone, OVTextEncoder
from ovdense.models.roi_heads import OVTextBBoxHead
from ovdense.testing import TINY_CLIP_CFG, random_images, tiny_clip

REPO = Path(__file__).resolve().parents[2]
TINY4 = dict(model_cfg=dict(TINY_CLIP_CFG, vision_cfg=dict(TINY_CLIP_CFG['vision_cfg'], layers=4)))


def test_backbone_pyramid_batch2_frozen():
    bb = OVFViTBackbone(tiny_clip(layers=4), (0, 1, 2, 3), with_dense=True).train()
    out = bb(random_images(2, 64, 96))
    assert [tuple(o.shape) for o in out] == [(2, 64, 16, 24), (2, 64, 8, 12), (2, 64, 4, 6), (2, 64, 2, 3),
                                             (2, 32, 4, 6)]
    assert torch.allclose(out[-1].norm(dim=1), torch.ones(2, 4, 6), atol=1e-5)
    assert all(o.is_contiguous() for o in out)  # mmcv's CPU RoIAlign misreads strided maps
    assert not bb.vit.clip.training and bb.up4.training
    out[0].sum().backward()
    assert all(p.grad is None for p in bb.vit.parameters()) and bb.up4[0].weight.grad is not None
    lat = OVFViTBackbone(tiny_clip(layers=4), (0, 1, 2, 3), out_channels=(8, 16, 32, 64))(random_images(2, 64, 64))
    assert [o.shape[1] for o in lat] == [8, 16, 32, 64]
    with pytest.raises(ValueError, match='4'):
        OVFViTBackbone(tiny_clip(layers=4), (0, 1, 2))


def head(**kw):
    init_default_scope('mmdet')  # the box coder and losses come from mmdet's registries
    h = OVTextBBoxHead(embed_dim=32, base_classes=['cat', 'dog'], in_channels=8, fc_out_channels=16, roi_feat_size=7,
                       num_shared_fcs=2, num_classes=3, **kw)
    return h


def texts(names=('cat', 'dog', 'zebra'), clip=None):
    """Class embeddings as the detector's text encoder gives them (learnt background)."""
    return OVTextEncoder(list(names), templates=['a {}.'], background='learnt', embed_dim=32)(clip or tiny_clip(layers=4))


def test_text_head_scores_vocabulary_and_fusion():
    h, text = head(alpha=0.0, beta=1.0).eval(), texts()
    x = torch.randn(5, 8, 7, 7)
    cls, reg = h(x, text)
    assert cls.shape == (5, 4) and reg.shape == (5, 4)  # 3 classes + background, class-agnostic boxes
    assert torch.allclose(cls.exp().sum(-1), torch.ones(5), atol=1e-5)  # test time: log-probabilities
    vlm = torch.randn(5, 32)
    fused = h(x, text, vlm)[0]
    # alpha=0: base classes and background keep the detector's log-probabilities; beta=1: novel = VLM
    assert torch.allclose(fused[:, [0, 1, 3]], cls[:, [0, 1, 3]], atol=1e-5)
    emb = torch.cat([text.queries, text.background])
    vlm_lp = (torch.nn.functional.normalize(vlm, dim=-1) @ emb.t() * h.vlm_temperature).log_softmax(-1)
    assert torch.allclose(fused[:, 2], vlm_lp[:, 2], atol=1e-5)
    # the fused scores reach NMS as they are (the reference's rule), not renormalised by a softmax
    assert not torch.allclose(fused.exp().sum(-1), torch.ones(5), atol=1e-3)
    rois = torch.cat([torch.zeros(5, 1), torch.tensor([[4.0, 4.0, 40.0, 40.0]]) + torch.arange(5.0)[:, None]], 1)
    meta = dict(img_shape=(64, 64), scale_factor=(1.0, 1.0))
    raw = h.predict_by_feat((rois,), (fused,), (reg,), [meta], rcnn_test_cfg=None)[0]
    assert torch.allclose(raw.scores, fused.exp(), atol=1e-6)
    nms_cfg = Config(dict(score_thr=0.0, nms=dict(type='nms', iou_threshold=1.0), max_per_img=100))
    det = h.predict_by_feat((rois,), (fused,), (reg,), [meta], rcnn_test_cfg=nms_cfg)[0]
    assert len(det) == 15 and torch.allclose(det.scores.max(), fused[:, :3].exp().max(), atol=1e-6)
    four = texts(['cat', 'dog', 'zebra', 'okapi'])
    assert h(x, four)[0].shape == (5, 5)  # the classes are the embeddings'
    with h.classes(3), pytest.raises(RuntimeError, match='the call counts 3 classes, 4'):
        h(x, four)  # inside a call, the count mmdet's targets and NMS read must be the embeddings'
    with h.classes(4):
        assert h.num_classes == 4 and h(x, four)[0].shape == (5, 5)
    assert h.num_classes == 3  # the configured count again, outside the call
    with pytest.raises(ValueError, match='vlm_temperature'):
        head(vlm_temperature=0.0)


def test_reference_training_loss_masks_novel_logits_and_weights_background():
    """CustomCrossEntropyLoss of the reference: class weight 0 for novel classes (their logits -inf in the
    softmax), bg_weight for background regions, averaged over all sampled regions."""
    text, x = texts(), torch.randn(6, 8, 7, 7)
    labels = torch.tensor([0, 1, 3, 3, 0, 3])  # 3 = background; no novel ('zebra') labels in training
    plain = head().train()
    ref = head(novel_logits='masked', background_weight=0.6).train()
    ref.load_state_dict(plain.state_dict())
    cls, reg = plain(x, text)
    cls_ref, reg_ref = ref(x, text)
    assert torch.isneginf(cls_ref[:, 2]).all() and torch.equal(cls_ref[:, [0, 1, 3]], cls[:, [0, 1, 3]])
    ones, targets = torch.ones(6), torch.zeros(6, 4)
    got = ref.loss(cls_ref, reg_ref, None, labels, ones, targets, torch.zeros(6, 4))['loss_cls']
    masked = cls[:, [0, 1, 3]].log_softmax(-1)  # the softmax over base classes and background only
    nll = -masked[torch.arange(6), torch.tensor([0, 1, 2, 2, 0, 2])]
    assert torch.allclose(got, (nll * torch.tensor([1, 1, 0.6, 0.6, 1, 0.6])).sum() / 6, atol=1e-5)
    assert not torch.allclose(plain.loss(cls, reg, None, labels, ones, targets, torch.zeros(6, 4))['loss_cls'], got)
    got.backward()
    assert torch.isfinite(ref.fc_cls.weight.grad).all()
    with pytest.raises(ValueError, match="valid: \\['negative', 'masked'\\]"):
        head(novel_logits='zero')
    no_base = head(novel_logits='masked').train()
    no_base.base_classes = None
    with pytest.raises(ValueError, match='base_classes'):
        no_base(x, text)


def test_synonyms_reduce_to_the_best_name():
    """A class with two names scores the better of the two ('max'), or its mean embedding ('mean')."""
    h = head().eval()
    clip = tiny_clip(layers=4)
    syn = OVTextEncoder(['cat', ['dog', 'puppy'], 'zebra'], templates=['a {}.'], background='learnt', embed_dim=32)
    one = OVTextEncoder(['cat', 'dog', 'puppy', 'zebra'], templates=['a {}.'], background='learnt', embed_dim=32)
    one.background = syn.background
    with torch.no_grad():
        logits = h.scores(torch.randn(4, 32), syn(clip), 1.0)
        region = torch.randn(4, 32)
        a, b = h.scores(region, syn(clip), 1.0), h.scores(region, one(clip), 1.0)
    assert logits.shape == (4, 4)
    assert torch.allclose(a[:, 1], b[:, 1:3].amax(1)) and torch.allclose(a[:, [0, 2, 3]], b[:, [0, 3, 4]])
    syn.synonyms = 'mean'
    mean = syn(clip)
    assert mean.queries.shape == (3, 32) and torch.equal(mean.query_to_class, torch.arange(3))


def test_vlm_temperature_none_is_the_clip_logit_scale():
    h = head(vlm_temperature=None).eval()
    clip = tiny_clip(layers=4)
    with torch.no_grad():
        clip.model.logit_scale.fill_(torch.tensor(16.5).log())
    text = texts(clip=clip)
    assert abs(h.vlm_scale(text) - 16.5) < 1e-3
    x, vlm = torch.randn(3, 8, 7, 7), torch.randn(3, 32)
    with torch.no_grad():
        by_clip = h(x, text, vlm)[0]
        h.vlm_temperature = 16.5
        explicit = h(x, text, vlm)[0]
        h.vlm_temperature = 75.0
        default = h(x, text, vlm)[0]
    assert torch.allclose(by_clip, explicit, atol=1e-5) and not torch.allclose(by_clip, default, atol=1e-3)


def test_box_features_are_roi_align_of_strided_maps():
    """RoI and VLM box features are the RoIAlign of the maps also when those are strided views (the ViT's
    transposed tokens, channels-last conv outputs): mmcv's CPU RoIAlign alone silently misreads them."""
    init_default_scope('mmdet')
    roi = lambda size, c, s: dict(type='SingleRoIExtractor', out_channels=c, featmap_strides=[s],  # noqa: E731
                                  roi_layer=dict(type='RoIAlign', output_size=size, sampling_ratio=0))
    rh = MODELS.build(dict(
        type='OVFViTRoIHead', bbox_roi_extractor=roi(7, 8, 4), vlm_roi_extractor=roi(1, 32, 16),
        bbox_head=dict(type='OVTextBBoxHead', embed_dim=32, base_classes=['cat', 'dog'], in_channels=8,
                       fc_out_channels=16, roi_feat_size=7, num_shared_fcs=2))).eval()
    x = (torch.randn(2, 16, 16, 8).permute(0, 3, 1, 2),)  # channels-last, as a conv of transposed tokens
    dense = torch.randn(2, 17, 32)[:, 1:].transpose(1, 2).reshape(2, 32, 4, 4)
    assert not dense.is_contiguous() and not x[0].is_contiguous()
    rois = torch.tensor([[0, 3.0, 5.0, 40.0, 30.0], [1, 20.0, 8.0, 63.0, 60.0], [1, 0.0, 0.0, 17.0, 19.0]])
    text = texts()
    with torch.no_grad():
        with rh.inputs(text, dense):
            got = rh._bbox_forward(x, rois)['cls_score']
        want_vlm = roi_align(dense, rois, 1, 1 / 16, -1, aligned=True).flatten(1)
        want_feats = roi_align(x[0], rois, 7, 1 / 4, -1, aligned=True)
        want = rh.bbox_head(want_feats, text, want_vlm)[0]
    with pytest.raises(RuntimeError, match=r'inside roi_head.inputs\(text\)'):
        rh._bbox_forward(x, rois)  # outside inputs(): no class embeddings
    assert torch.allclose(got, want, atol=1e-5)


def _tiny_plugin_model():
    cfg = Config.fromfile(str(REPO / 'configs/fvit/faster-rcnn_fvit-vit-b16_fpn_coco.py'))
    init_default_scope('mmdet')
    cfg.model.backbone.clip = TINY4
    cfg.model.backbone.out_indices = (0, 1, 2, 3)
    cfg.model.roi_head.bbox_head.embed_dim = 32
    cfg.model.text_encoder.templates = ['a photo of a {}.']
    return MODELS.build(cfg.model)


def _det_batch(model, n=2, size=128):
    samples = []
    for i in range(n):
        s = DetDataSample()
        s.set_metainfo(dict(img_shape=(size, size), ori_shape=(size, size), pad_shape=(size, size),
                            scale_factor=(1.0, 1.0), batch_input_shape=(size, size)))
        s.gt_instances = InstanceData(bboxes=torch.tensor([[10.0, 12.0, 70.0, 90.0], [40.0, 30.0, 120.0, 100.0]]),
                                      labels=torch.tensor([i, 5]))
        samples.append(s)
    return random_images(n, size, size), samples


def test_plugin_config_one_train_and_one_test_iteration():
    """The stock mmdet Faster R-CNN config with the backbone, the box head and the types that hand it the
    text swapped; the rest (FPN, RPN, samplers, losses) is mmdet's."""
    torch.manual_seed(0)
    model = _tiny_plugin_model()
    assert type(model).__name__ == 'OVFViT' and type(model.neck).__name__ == 'FPN'
    assert type(model.rpn_head).__name__ == 'RPNHead'
    model.init_weights()
    model.train()
    x, samples = _det_batch(model)
    losses = model.loss(x, samples)
    total = sum(v for k, v in losses.items() if 'loss' in k and isinstance(v, torch.Tensor))
    total = total + sum(sum(v) for k, v in losses.items() if 'loss' in k and isinstance(v, list))
    assert torch.isfinite(total)
    total.backward()
    assert model.roi_head.bbox_head.fc_cls.weight.grad is not None
    model.eval()
    model.test_cfg.rcnn.score_thr = 0.0  # an untrained head: keep every box, so there are labels to check
    with torch.no_grad():
        out = model.predict(x, samples)
        assert len(out) == 2 and out[0].pred_instances.bboxes.shape[1] == 4
        labels = out[1].pred_instances.labels
        assert labels.numel() == 100 and int(labels.max()) >= 3  # 80 COCO classes compete
        x, samples = _det_batch(model)
        for s in samples:  # the vocabulary is an input, carried in the samples' metainfo: 3 classes now
            s.set_metainfo(dict(vocabulary=['cat', 'dog', 'zebra']))
        small = model.predict(x, samples)[1].pred_instances.labels
    assert small.numel() > 0 and int(small.max()) < 3 and len(model.vocabulary) == 80


def test_concurrent_predictions_with_other_vocabularies_do_not_meet():
    """The call's class embeddings and class count are its context, not attributes of the heads: two threads
    detecting with 80 and 3 classes through one model each get what they get alone."""
    from concurrent.futures import ThreadPoolExecutor
    torch.manual_seed(0)
    model = _tiny_plugin_model()
    model.init_weights()
    model.eval()
    model.test_cfg.rcnn.score_thr = 0.0
    x, base = _det_batch(model)
    configured = model.roi_head.bbox_head.num_classes

    def run(vocab):
        _, samples = _det_batch(model)
        for s in samples:
            if vocab is not None:
                s.set_metainfo(dict(vocabulary=vocab))
        with torch.no_grad():
            out = model.predict(x, samples)[1].pred_instances
        return out.labels.clone(), out.scores.clone()

    vocabs = [None, ['cat', 'dog', 'zebra']]
    alone = [run(v) for v in vocabs]
    with ThreadPoolExecutor(2) as pool:
        for i, (labels, scores) in enumerate(pool.map(run, vocabs * 4)):
            assert torch.equal(labels, alone[i % 2][0]) and torch.allclose(scores, alone[i % 2][1]), i
    assert int(alone[0][0].max()) >= 3 and int(alone[1][0].max()) < 3
    assert model.roi_head.bbox_head.num_classes == configured  # nothing was resized
