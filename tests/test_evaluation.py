import math

import pytest

from ovdense.testing.synthetic_eval import dense_zero_shot, image_zero_shot


@pytest.fixture(scope='module')
def shipped_clip():
    from ovdense.assets import TINYCLIP_SYNTHETIC
    from ovdense.clip import build_clip
    clip = build_clip(**TINYCLIP_SYNTHETIC)
    clip.load_weights()
    return clip


def test_image_zero_shot_tells_a_trained_clip_from_a_random_one(shipped_clip, tiny_clip):
    """The shipped CLIP (trained on the synthetic world) recognises the 12 shapes (measured 83.7% here,
    retrieval 97.5%); a random CLIP is at chance (1/12): the report measures recognition."""
    trained = image_zero_shot(shipped_clip, num_images=40)
    rand = image_zero_shot(tiny_clip, num_images=40, image_size=64)
    assert trained['top1'] > 0.6 and trained['retrieval_r1'] > 0.8
    assert rand['top1'] < 0.2 and rand['retrieval_r1'] < 0.2
    assert trained['acc_star'] > 0.5  # a class the dense heads treat as novel


def test_dense_zero_shot_tells_a_trained_clip_from_a_random_one(shipped_clip, tiny_clip):
    """clearclip with the shipped CLIP finds base objects on 8 scenes (measured mIoU_base 7.7), a random
    CLIP none (0.0)."""
    trained = dense_zero_shot(shipped_clip, 'clearclip', num_images=8)
    rand = dense_zero_shot(tiny_clip, 'clearclip', num_images=8, image_size=64)
    assert {'mIoU_base', 'mIoU_novel', 'mIoU_stuff'} <= set(trained)
    assert trained['mIoU_base'] > 3.0 and rand['mIoU_base'] < 1.0
    assert not math.isnan(trained['mIoU_novel'])


def _seg_sample(pred, gt):
    import torch
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    s = SegDataSample()
    s.pred_sem_seg = PixelData(data=torch.as_tensor(pred)[None])
    s.gt_sem_seg = PixelData(data=torch.as_tensor(gt)[None])
    return s.to_dict()


def test_zero_shot_iou_metric_oracle_and_missed_novel():
    import pytest
    import torch

    import ovdense.models  # noqa: F401  (registers the metric)
    from ovdense.evaluation.zero_shot_iou import OVZeroShotIoUMetric
    gt = torch.tensor([[0, 0, 1, 1], [2, 2, 3, 3], [0, 1, 2, 255]])
    meta = dict(classes=('sky', 'road', 'car', 'zebra'), novel_classes=('zebra',))
    m = OVZeroShotIoUMetric(per_class=True)
    m.dataset_meta = meta
    m.process({}, [_seg_sample(gt.clamp(max=3), gt)])
    r = m.compute_metrics(m.results)
    assert r['mIoU_seen'] == 100 and r['mIoU_unseen'] == 100 and r['hIoU'] == 100
    miss = gt.clone().clamp(max=3)
    miss[miss == 3] = 2  # every zebra pixel called car
    m = OVZeroShotIoUMetric()
    m.dataset_meta = meta
    m.process({}, [_seg_sample(miss, gt)])
    r = m.compute_metrics(m.results)
    assert r['mIoU_unseen'] == 0 and r['hIoU'] == 0 and 50 < r['mIoU_seen'] < 100
    bad = OVZeroShotIoUMetric()
    bad.dataset_meta = dict(classes=('sky',), novel_classes=('zebra',))
    bad.process({}, [_seg_sample(torch.zeros(2, 2, dtype=torch.long), torch.zeros(2, 2, dtype=torch.long))])
    with pytest.raises(ValueError, match='zebra'):
        bad.compute_metrics(bad.results)
    with pytest.raises(ValueError, match="valid: \\['rest', 'base'\\]"):
        OVZeroShotIoUMetric(seen='all')


def test_region_metric_keeps_top5_only_and_equals_full_scores():
    import torch

    from ovdense.evaluation.region import OVRegionClsMetric, per_class_topk
    g = torch.Generator().manual_seed(0)
    scores, labels = torch.randn(60, 1203, generator=g), torch.randint(0, 1203, (60,), generator=g)
    labels[:20] = scores[:20].argmax(1)  # top-1 hits
    labels[20:30] = scores[20:30].topk(4, dim=1).indices[:, 3]  # top-5 hits only
    metric = OVRegionClsMetric()
    metric.process({}, [dict(labels=labels[:35], scores_roi=scores[:35]), dict(labels=labels[35:], scores_roi=scores[35:])])
    assert [r['scores_roi'].shape for r in metric.results] == [(35, 5), (25, 5)]  # not (n, 1203)
    res = metric.compute_metrics(metric.results)
    assert res['roi_top1'] == pytest.approx(per_class_topk(scores, labels, 1))
    assert res['roi_top5'] == pytest.approx(per_class_topk(scores, labels, 5))
    assert res['roi_top5'] > res['roi_top1'] > 0
