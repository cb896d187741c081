import math

from ovdense.evaluation import dense_zero_shot, image_zero_shot


def test_image_zero_shot_reports(tiny_clip):
    r = image_zero_shot(tiny_clip, num_images=40, image_size=64)
    assert 0 <= r['top1'] <= 1 and 0 <= r['retrieval_r1'] <= 1
    assert any(k.startswith('acc_') for k in r)


def test_dense_zero_shot_reports(tiny_clip):
    r = dense_zero_shot(tiny_clip, 'clearclip', num_images=4, image_size=64)
    assert {'mIoU_base', 'mIoU_novel', 'mIoU_stuff'} <= set(r)
    assert all(0 <= v <= 100 for k, v in r.items() if k.startswith('IoU_'))
    assert not math.isnan(r['mIoU_stuff'])
