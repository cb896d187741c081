import pytest
import torch

from ovdense import benchmarks
from ovdense.apis import config_root
from ovdense.assets import TINYCLIP_SYNTHETIC
from ovdense.models.utils import slide_windows

TINY = TINYCLIP_SYNTHETIC['config_file']  # 128 px, 4 blocks; random weights of it


@pytest.mark.parametrize('mode, has_pamr', [('naclip', True), ('sclip', False)])
def test_scale_times_pamr_inside_each_segmentation(mode, has_pamr):
    res = benchmarks.scale(mode=mode, size=(96, 160), images=2)  # the shipped tiny CLIP, Context-59 protocol
    assert res['dense_mode'] == mode and res['queries'] == 21
    assert len(res['seg_s']) == len(res['pamr_s']) == 2
    for seg, pamr in zip(res['seg_s'], res['pamr_s']):
        assert (pamr > 0) == has_pamr and pamr <= seg
    assert 1 <= res['classes_in_label'] <= 21
    assert res['peak_rss_mb'] >= res['peak_rss_after_text_mb'] > 0


def test_scale_with_made_up_classes_and_one_image():
    res = benchmarks.scale(mode='clearclip', size=(64, 64), classes=7)
    assert res['queries'] == 7 and isinstance(res['seg_s'], float) and res['pamr_s'] == 0.0


def test_dense_against_plain_over_the_same_windows_and_a_fresh_process():
    res = benchmarks.dense_vs_plain(clip_config=TINY, mode='sclip', size=(256, 224), crop=128, stride=96,
                                    window_batch=2, repeat=1)
    assert res['windows'] == len(slide_windows(256, 224, 128, 96)) == 6
    assert res['ratio'] == res['dense_inference_s'] / res['plain_forward_s']
    assert res['peak_rss_mb'] > 100  # a spawned process that imported torch and built the model


def test_unknown_mode_lists_the_registered_ones():
    with pytest.raises(ValueError, match=r"unknown mode 'nope'.*'sclip'"):
        benchmarks.dense_vs_plain(clip_config=TINY, mode='nope', fresh_process=False)


def test_clipself_iteration_trains():
    before = torch.get_num_threads()
    res = benchmarks.clipself_iteration(clip_config=TINY, size=(192, 192), boxes=2, repeat=1)
    assert res['s_per_iter'] > 0 and res['peak_rss_mb'] > 0
    assert torch.get_num_threads() == before


def test_protocol_reports_every_stage(tmp_path):
    import cv2
    import numpy as np
    image = tmp_path / 'x.png'
    cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8))
    res = benchmarks.protocol(str(config_root() / 'naclip/naclip_vit-b16_voc21-336.py'), str(image),
                              clip_config=TINY, repeat=1)
    stages = res['stages']
    assert set(stages) == {'clip windows', 'pamr', 'rest', 'total'}
    assert stages['total']['gflop'] == pytest.approx(sum(stages[k]['gflop'] for k in ('clip windows', 'pamr', 'rest')),
                                                     abs=0.02)
    assert res['matmul_gflops'] > 0 and res['peak_rss_mb'] > 0
