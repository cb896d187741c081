"""ovdense.profiling: stage times and FLOPs against the matmul rate, and the harness that runs a reference's own code
from its checkout (here a stand-in checkout, since the reference repositories are not part of the test data)."""
import os
import sys
import textwrap

import cv2
import numpy as np
import pytest
import torch

from ovdense.apis import config_root, init_model
from ovdense.assets import TINYCLIP_SYNTHETIC
from ovdense.profiling import (StageProfiler, build_reference, compare_with_reference, find_reference_module,
                               profile_inference)

NACLIP = config_root() / 'synthetic/naclip_tinyclip_synthetic-128.py'


class _Toy:
    def outer(self, a):
        return self.inner(a) @ a

    def inner(self, a):
        return a @ a


def test_stages_time_and_count_nested_calls_and_put_the_methods_back():
    toy, n = _Toy(), 64
    prof = StageProfiler({'outer': [(toy, 'outer')], 'inner': [(toy, 'inner')], 'absent': [(None, 'x')]})
    a = torch.randn(n, n)
    with prof:
        with prof.counting_flops():
            toy.outer(a)
            toy.inner(a)
    assert prof.stages['outer'].flops == 2 * 2 * n ** 3  # its own matmul and the inner one
    assert prof.stages['inner'].flops == 2 * 2 * n ** 3 and prof.stages['inner'].calls == 2
    assert prof.stages['outer'].calls == 1 and prof.stages['outer'].seconds > 0
    assert not prof.stages['absent'].methods
    assert 'outer' not in vars(toy) and 'inner' not in vars(toy)  # the class's methods show through again
    prof.reset()
    assert prof.stages['outer'].seconds == 0 and prof.stages['outer'].flops == 0


@pytest.fixture(scope='module')
def image_file(tmp_path_factory):
    path = tmp_path_factory.mktemp('img') / 'scene.png'
    rng = np.random.default_rng(0)
    img = np.zeros((96, 160, 3), np.uint8)
    img[:, :80] = (40, 160, 40)
    img[:, 80:] = (200, 120, 30)
    cv2.imwrite(str(path), np.clip(img + rng.integers(0, 30, img.shape), 0, 255).astype(np.uint8))
    return path


def test_profile_inference_splits_the_time_and_flops(image_file):
    model = init_model(NACLIP, cfg_options={'model.pamr': dict(num_iter=10, dilations=(8, 16))})
    res = profile_inference(model, image_file, repeat=1, gflops=50.0)
    st = res['stages']
    assert set(st) == {'clip windows', 'pamr', 'rest', 'total'}  # no VFM in NACLIP
    assert st['clip windows']['gflop'] > 0 and st['total']['gflop'] >= st['clip windows']['gflop']
    parts = st['clip windows']['seconds'] + st['pamr']['seconds'] + st['rest']['seconds']
    assert parts == pytest.approx(st['total']['seconds'], abs=2e-3)
    for s in st.values():
        assert s['bound_s'] == pytest.approx(s['gflop'] / 50.0, abs=1e-3)
    assert 'dense_features' not in vars(model.backbone)


def test_profile_inference_reports_the_vfm_inside_the_windows(image_file):
    model = init_model(config_root() / 'synthetic/proxyclip_tinyclip_synthetic-128.py')
    st = profile_inference(model, image_file, repeat=1, gflops=50.0)['stages']
    assert 0 < st['vfm']['gflop'] < st['clip windows']['gflop']
    assert st['vfm']['seconds'] <= st['clip windows']['seconds']


_FAKE = '''
from mmseg.models.data_preprocessor import SegDataPreProcessor
from mmseg.models.segmentors import BaseSegmentor
from mmseg.registry import MODELS
from mmengine.structures import PixelData

from ovdense.apis import inference_model, init_model


@MODELS.register_module(force=True)
class StandInReference(BaseSegmentor):
    """Stands for a reference's segmentor: built from its config with clip_path / device, predicting through its
    own test pipeline; here ovdense inside, its labels shifted by `shift`."""
    def __init__(self, clip_path, config, clip_config, name_path, device='cuda', shift=0):
        super().__init__(data_preprocessor=SegDataPreProcessor(mean=[0, 0, 0], std=[1, 1, 1]))
        assert open(name_path).read().split() == ['a', 'b']  # read relative to the checkout's root
        self.ov = init_model(config, clip=dict(config_file=clip_config, checkpoint=clip_path))
        self.shift, self.device = shift, device

    def predict(self, inputs, data_samples):
        assert inputs.shape[-2:] == (96, 160)  # the image, through the checkout's own pipeline
        for s in data_samples:
            label = inference_model(self.ov, s.img_path).pred_sem_seg.data
            s.set_data(dict(pred_sem_seg=PixelData(data=(label + self.shift) % 16)))
        return data_samples

    def _forward(self, inputs, data_samples=None):
        raise NotImplementedError

    def loss(self, inputs, data_samples):
        raise NotImplementedError

    def encode_decode(self, inputs, batch_img_metas):
        raise NotImplementedError

    def extract_feat(self, inputs):
        raise NotImplementedError
'''


def _checkout(root, shift):
    (root / 'configs').mkdir(parents=True)
    (root / 'stand_in_reference.py').write_text(_FAKE)
    (root / 'configs/cls.txt').write_text('a\nb\n')
    (root / 'configs/cfg.py').write_text(textwrap.dedent(f'''
        model = dict(type='StandInReference', clip_path='ViT-B/16', name_path='./configs/cls.txt', shift={shift},
                     config={str(NACLIP)!r}, clip_config={TINYCLIP_SYNTHETIC['config_file']!r})
        test_pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'), dict(type='PackSegInputs')]
        '''))
    return root


@pytest.mark.parametrize('shift,agreement', [(0, 1.0), (1, 0.0)])
def test_reference_runs_from_its_checkout_alternated_with_ovdense(tmp_path, image_file, shift, agreement):
    repo = _checkout(tmp_path / 'ref', shift)
    cwd, path = os.getcwd(), list(sys.path)
    reference = build_reference(repo, 'configs/cfg.py', TINYCLIP_SYNTHETIC['checkpoint'])
    assert os.getcwd() == cwd and sys.path == path
    assert reference.device == 'cpu'
    ours = init_model(NACLIP)
    res = compare_with_reference(ours, reference, image_file, repeat=1)
    assert res['label_agreement'] == agreement
    assert res['ratio'] == pytest.approx(res['ovdense_s'] / res['reference_s'], rel=1e-2)


def test_a_checkout_without_the_configs_class_is_named(tmp_path):
    repo = _checkout(tmp_path / 'ref', 0)
    with pytest.raises(FileNotFoundError, match='NoSuchSegmentor'):
        find_reference_module(repo, 'NoSuchSegmentor')


def test_pamr_counts_the_steps_of_its_cpu_kernel():
    """PAMR's iterations on the CPU (torch.ops.ovdense.pamr_step) are counted: 10 iterations x 2 x 16 neighbours a
    pixel x 8 maps."""
    from ovdense.models.utils.pamr import PAMR
    pamr = PAMR(10, (1, 2))
    image, scores = torch.randn(1, 3, 9, 11), torch.randn(1, 8, 9, 11)
    prof = StageProfiler({'pamr': [(pamr, 'refine')]})
    with prof, prof.counting_flops():
        pamr(image, scores)
    assert prof.stages['pamr'].flops == 10 * 2 * 16 * 9 * 11 * 8


def test_the_cpus_fused_attention_is_counted():
    q, k, v = (torch.randn(2, 3, 10, 8) for _ in range(3))
    prof = StageProfiler({})
    with prof, prof.counting_flops() as counter:
        torch.nn.functional.scaled_dot_product_attention(q, k, v)
    assert counter.get_total_flops() == 4 * 2 * 3 * 10 * 10 * 8  # QK^T and AV
