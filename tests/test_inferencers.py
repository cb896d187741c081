"""The stock OpenMMLab inferencers on shipped configs: checkpoints written by tools/train.py, the weights a config
names (never random CLIPs), the vocabulary's names drawn, and classes passed per call (``texts=``)."""
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
import torch

from ovdense.apis import find_config, init_model, inference_model
from ovdense.datasets.synthetic import export
from ovdense.fileio import weights_only_checkpoints

REPO = Path(__file__).resolve().parents[1]
OTHER = ['circle', 'sky', 'road']


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    """6 synthetic scenes; a text-seg and an F-ViT checkpoint from 2 iterations of tools/train.py on them."""
    root = tmp_path_factory.mktemp('inferencers')
    export(root, split='train', num_images=6, seed=0, progress=False)
    ckpts = {}
    # the Runner builds the validation loop too: it reads the same scenes (a clone has no data/synthetic)
    val = {'textseg_tinyclip_synthetic-128': [f'val_dataloader.dataset.data_root={root}/train'],
           'fvit_tinyclip_synthetic-128': [f'val_dataloader.dataset.data_root={root}/train',
                                           f'val_evaluator.ann_file={root}/train/instances.json']}
    for name in ('textseg_tinyclip_synthetic-128', 'fvit_tinyclip_synthetic-128'):
        work = root / name
        r = subprocess.run([sys.executable, 'tools/train.py', str(find_config(name)), '--work-dir', str(work),
                            '--cfg-options', f'train_dataloader.dataset.data_root={root}/train', *val[name],
                            'train_dataloader.batch_size=2', 'train_cfg.max_iters=2',
                            'default_hooks.checkpoint.interval=2'],
                           capture_output=True, text=True, cwd=REPO, timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
        ckpts[name] = str(work / 'iter_2.pth')
    return cv2.imread(str(root / 'train/images/000000.png')), ckpts


def _drawn_classes(monkeypatch):
    from mmseg.visualization import SegLocalVisualizer
    drawn, draw = [], SegLocalVisualizer._draw_sem_seg

    def spy(self, image, sem_seg, classes, palette, *args, **kwargs):
        drawn.append(tuple(classes))
        return draw(self, image, sem_seg, classes, palette, *args, **kwargs)
    monkeypatch.setattr(SegLocalVisualizer, '_draw_sem_seg', spy)
    return drawn


def test_mmseg_inferencer_agrees_with_inference_model(world, tmp_path, monkeypatch):
    from mmseg.apis import MMSegInferencer
    img, ckpts = world
    config = find_config('textseg_tinyclip_synthetic-128')
    model = init_model(config, ckpts['textseg_tinyclip_synthetic-128'])
    with weights_only_checkpoints():  # a training checkpoint (its message hub), weights-only: torch >= 2.6
        inferencer = MMSegInferencer(model=str(config), weights=ckpts['textseg_tinyclip_synthetic-128'], device='cpu')
    drawn = _drawn_classes(monkeypatch)
    got = inferencer(img, return_datasamples=True, out_dir=str(tmp_path))
    want = inference_model(model, img)
    assert torch.equal(got.pred_sem_seg.data, want.pred_sem_seg.data)  # every pixel
    names = tuple(model.vocabulary.names)
    assert got.metainfo['classes'] == names and drawn == [names]  # not Cityscapes'
    assert list(tmp_path.glob('vis/*.jpg'))  # the overlay file


def test_mmseg_inferencer_loads_the_clip_a_training_free_config_names(world):
    """The inferencer never calls init_weights: the CLIP the config names is loaded before the first forward (it
    ran with random weights before: 0.002 % of labels agreed)."""
    from mmseg.apis import MMSegInferencer
    img, _ = world
    config = find_config('naclip_tinyclip_synthetic-128')
    inferencer = MMSegInferencer(model=str(config), device='cpu')
    clip = inferencer.model.backbone.clip
    assert clip.weights_pending
    got = inferencer(img, return_datasamples=True)
    assert not clip.weights_pending
    assert torch.equal(got.pred_sem_seg.data, inference_model(init_model(config), img).pred_sem_seg.data)


def test_ov_seg_inferencer_takes_classes_and_texts(world, monkeypatch):
    from ovdense.inferencers import OVSegInferencer
    img, ckpts = world
    config, ckpt = find_config('textseg_tinyclip_synthetic-128'), ckpts['textseg_tinyclip_synthetic-128']
    model = init_model(config, ckpt)
    inferencer = OVSegInferencer(model=str(config), weights=ckpt, device='cpu')
    drawn = _drawn_classes(monkeypatch)
    got = inferencer(img, return_datasamples=True, texts='circle . sky . road', out_dir='')
    want = inference_model(model, img, vocabulary=OTHER)
    assert torch.equal(got.pred_sem_seg.data, want.pred_sem_seg.data)
    assert got.metainfo['classes'] == tuple(OTHER)
    default = inferencer(img, return_datasamples=True)
    assert not torch.equal(default.pred_sem_seg.data, got.pred_sem_seg.data)  # texts= was for one call
    renamed = OVSegInferencer(model=str(config), weights=ckpt, device='cpu', classes=OTHER)
    assert renamed.model.vocabulary.names == OTHER
    assert torch.equal(renamed(img, return_datasamples=True).pred_sem_seg.data, want.pred_sem_seg.data)
    assert drawn == []  # nothing drawn without out_dir / show


def test_det_inferencer_agrees_and_takes_texts(world):
    from mmdet.apis import DetInferencer
    img, ckpts = world
    config, ckpt = find_config('fvit_tinyclip_synthetic-128'), ckpts['fvit_tinyclip_synthetic-128']
    model = init_model(config, ckpt)
    with weights_only_checkpoints():
        inferencer = DetInferencer(model=str(config), weights=ckpt, device='cpu', show_progress=False)
    got = inferencer(img, return_datasamples=True, pred_score_thr=0.0)['predictions'][0]
    want = inference_model(model, img)
    for key in ('bboxes', 'scores', 'labels'):
        assert torch.equal(got.pred_instances[key], want.pred_instances[key]), key
    assert inferencer.visualizer.dataset_meta['classes'] == tuple(model.vocabulary.names)
    other = inferencer(img, return_datasamples=True, pred_score_thr=0.0, texts='circle . sky . road')['predictions'][0]
    want = inference_model(model, img, vocabulary=OTHER)
    assert torch.equal(other.pred_instances.scores, want.pred_instances.scores)
    assert not torch.equal(other.pred_instances.scores, got.pred_instances.scores)  # texts= reached the text side
    labels = other.pred_instances.labels.tolist()
    assert other.pred_instances.label_names == [OTHER[i] for i in labels] and max(labels) < len(OTHER)


def test_assigned_dataset_meta_does_not_rename_the_vocabulary(world):
    """OpenMMLab code assigns ``model.dataset_meta`` (Cityscapes' names without a checkpoint meta): the names
    stay the vocabulary's, the labels index."""
    model = init_model(find_config('naclip_tinyclip_synthetic-128'))
    names = tuple(model.vocabulary.names)
    model.dataset_meta = dict(classes=('road', 'sidewalk'), palette=[(0, 0, 0), (1, 1, 1)])
    assert model.dataset_meta['classes'] == names and len(model.dataset_meta['palette']) == len(names)


def test_tools_test_takes_the_checkpoint_positionally(world, tmp_path):
    """``python tools/test.py CONFIG CHECKPOINT`` as mmseg / mmdet; the old ``--load-from`` still works, warned."""
    _, ckpts = world
    root = Path(ckpts['textseg_tinyclip_synthetic-128']).parents[1] / 'train'
    metrics = []
    for i, form in enumerate(([ckpts['textseg_tinyclip_synthetic-128']],
                              ['--load-from', ckpts['textseg_tinyclip_synthetic-128']])):
        r = subprocess.run([sys.executable, 'tools/test.py', str(find_config('textseg_tinyclip_synthetic-128')), *form,
                            '--data-root', str(root), '--max-images', '2', '--work-dir', str(tmp_path / str(i))],
                           capture_output=True, text=True, cwd=REPO, timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
        assert ('--load-from is deprecated' in r.stderr) == (i == 1)
        assert f"Load checkpoint from {ckpts['textseg_tinyclip_synthetic-128']}" in r.stdout + r.stderr
        metrics.append((tmp_path / str(i) / 'metrics.json').read_text())
    assert metrics[0] == metrics[1] and 'mIoU' in metrics[0]


def test_input_statistics_must_be_the_clips():
    """A stock config's ImageNet mean / std reach the CLIP as other colours: refused, naming the line to write."""
    import numpy as np
    model = init_model(find_config('naclip_tinyclip_synthetic-128'),
                       cfg_options={'model.data_preprocessor.mean': [123.675, 116.28, 103.53],
                                    'model.data_preprocessor.std': [58.395, 57.12, 57.375]})
    image = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match=r'normalises with mean \[123.675, 116.28, 103.53\].*trained with mean '
                                         r'\[122.771, 116.746, 104.094\], std \[68.501, 66.632, 70.323\].*set '
                                         r'data_preprocessor=dict\(mean='):
        inference_model(model, image)
    model = init_model(find_config('naclip_tinyclip_synthetic-128'), cfg_options={
        'model.data_preprocessor': dict(_delete_=True, type='SegDataPreProcessor', bgr_to_rgb=True)})
    with pytest.raises(ValueError, match='the data preprocessor does not normalise'):
        inference_model(model, image)


def test_fvit_out_indices_error_names_the_depth():
    from mmdet.registry import MODELS

    import ovdense.detection  # noqa: F401
    from ovdense.testing import TINY_CLIP_CFG
    with pytest.raises(ValueError, match=r'4 increasing block indices of this 4-block CLIP, got \[3, 2, 1, 0\] '
                                         r'\(e\.g\. \[0, 1, 2, 3\]'):
        MODELS.build(dict(type='OVFViTBackbone', clip=dict(model_cfg=dict(TINY_CLIP_CFG, vision_cfg=dict(
            TINY_CLIP_CFG['vision_cfg'], layers=4))), out_indices=(3, 2, 1, 0)))


def test_moved_keywords_are_answered_with_the_new_form():
    """Outside configs written for older releases: the keyword's new place, not a bare TypeError."""
    from mmdet.registry import MODELS as DET
    from mmseg.registry import MODELS as SEG

    import ovdense.detection  # noqa: F401
    from mmengine.registry import DefaultScope
    with pytest.raises(ValueError, match=r'OVTextBBoxHead: clip= moved: .*OVFViT\(text_encoder=dict'), \
            DefaultScope.overwrite_default_scope('mmdet'):
        DET.build(dict(type='OVTextBBoxHead', embed_dim=32, clip=dict(model_name='ViT-B-16')))
    with pytest.raises(ValueError, match=r'OVDenseCLIP: vocabulary= moved: .*text_encoder=dict\(vocabulary=\.\.\.\)'), \
            DefaultScope.overwrite_default_scope('mmseg'):
        SEG.build(dict(type='OVDenseCLIP', backbone=dict(), context_decoder=dict(), decode_head=dict(),
                       text_encoder=dict(), vocabulary=['cat']))
