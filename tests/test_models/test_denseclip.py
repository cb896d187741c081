"""DenseCLIP: golden parity, the ADE20K ViT-B config trains on CPU (random weights, tiny fake data)."""
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmengine.structures import PixelData

import ovdense.models  # noqa: F401
from ovdense.testing.parity import run_case
from ovdense.testing import golden_dir

from ..conftest import requires_shared

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / 'configs/denseclip/denseclip_vit-b16_ade20k-640.py'


@requires_shared
def test_golden_denseclip_case():
    checks = run_case(golden_dir() / 'denseclip' / 'case_a.pt')
    assert len(checks) >= 20
    bad = [(c.name, c.diff) for c in checks if not c.ok]
    assert not bad, bad


def _small_vitb_model(size=96):
    cfg = Config.fromfile(str(CONFIG))
    init_default_scope('mmseg')
    cfg.model.backbone.clip = dict(model_name='ViT-B-16')  # random weights, no download
    cfg.model.backbone.norm_cfg = dict(type='BN')  # what the Runner makes of SyncBN in one process
    cfg.model.decode_head.norm_cfg = dict(type='BN')
    cfg.model.data_preprocessor.size = (size, size)
    return cfg, MODELS.build(cfg.model)


def test_ade20k_config_loss_decreases_on_a_fixed_batch():
    torch.manual_seed(0)
    cfg, model = _small_vitb_model()
    model.init_weights()
    model.train()
    assert not any(p.requires_grad for p in model.backbone.clip.text_parameters())
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    g = torch.Generator().manual_seed(0)
    inputs = torch.randn(2, 3, 96, 96, generator=g)  # batch of 2
    labels = torch.randint(0, 150, (2, 6, 6), generator=g).repeat_interleave(16, 1).repeat_interleave(16, 2)
    samples = []
    for lab in labels:
        s = SegDataSample(gt_sem_seg=PixelData(data=lab[None]))
        s.set_metainfo(dict(img_shape=(96, 96), pad_shape=(96, 96), ori_shape=(96, 96)))
        samples.append(s)
    losses = []
    for _ in range(20):
        parsed, log = model.parse_losses(model(inputs, samples, mode='loss'))
        optim.update_params(parsed)
        losses.append(log['loss'].item())
    assert {'decode.loss_ce', 'aux_score.loss_ce'} <= set(log)
    assert losses[-1] < 0.8 * losses[0], losses


def test_ade20k_config_one_runner_iteration(tmp_path):
    root = tmp_path / 'ade'
    for sub in ('images/training', 'annotations/training', 'images/validation', 'annotations/validation'):
        (root / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split in ('training', 'validation'):
        for i in range(2):
            cv2.imwrite(str(root / f'images/{split}/ADE_{i}.jpg'), rng.integers(0, 255, (120, 160, 3), dtype=np.uint8))
            cv2.imwrite(str(root / f'annotations/{split}/ADE_{i}.png'), rng.integers(0, 151, (120, 160), dtype=np.uint8))
    opts = ['model.backbone.clip.pretrained=None', f'train_dataloader.dataset.data_root={root}',
            f'val_dataloader.dataset.data_root={root}', f'test_dataloader.dataset.data_root={root}',
            'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False', 'train_cfg.max_iters=1',
            'train_cfg.val_interval=100', 'model.data_preprocessor.size=(96,96)',
            'default_hooks.checkpoint.interval=1']
    pipeline_crop = ['train_dataloader.dataset.pipeline.3.crop_size=(96,96)',
                     'train_dataloader.dataset.pipeline.2.scale=(192,96)']
    r = subprocess.run([sys.executable, '-W', 'ignore', str(REPO / 'tools/train.py'), str(CONFIG), '--work-dir',
                        str(tmp_path / 'work'), '--cfg-options', *opts, *pipeline_crop],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert (tmp_path / 'work' / 'iter_1.pth').is_file()
