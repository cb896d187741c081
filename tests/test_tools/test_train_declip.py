"""DeCLIP's shipped config through tools/train.py on COCO128 (tiny EVA-02 student, tiny DINOv2 VFM): a run killed
with SIGKILL and resumed ends with the weights of an uninterrupted one, and the export is in the format it was given."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ovdense.clip import build_clip, load_state_dict_file
from ovdense.testing import TINY_EVA_CFG, shared_dir

from ..conftest import requires_shared

REPO = Path(__file__).resolve().parents[2]
COCO128 = shared_dir() / 'data' / 'coco128'


@pytest.fixture(scope='module')
def config(tmp_path_factory):
    root = tmp_path_factory.mktemp('declip')
    torch.manual_seed(0)
    cfg_json, weights = build_clip(model_cfg=TINY_EVA_CFG).save(root, 'tiny', weights_format='eva_clip')
    vfm = dict(model_name='vit_base_patch14_reg4_dinov2', pretrained=False,
               model_kwargs=dict(embed_dim=32, depth=1, num_heads=2, img_size=56))
    path = root / 'declip_coco128.py'
    path.write_text(f'''_base_ = [{str(REPO / 'configs/declip/declip_eva02-b16_coco-grid-560.py')!r}]
model = dict(clip=dict(_delete_=True, config_file={str(cfg_json)!r}, checkpoint={str(weights)!r}), train_blocks=2,
             text_encoder=dict(templates=['{{}}']),
             losses=[dict(type='OVRegionCosineLoss', weight=1.0), dict(type='OVContextLoss', weight=0.1, vfm={vfm!r})])
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False, dataset=dict(
    ann_file={str(COCO128 / 'annotations/instances.json')!r}, img_dir={str(COCO128 / 'images')!r},
    input_size=112, crop_size=64, max_boxes=4))
test_dataloader = None
test_evaluator = None
test_cfg = None
param_scheduler = []
train_cfg = dict(max_iters=4)
default_hooks = dict(checkpoint=dict(interval=1), logger=dict(interval=1))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
''')
    return root, path


def _cmd(config, work_dir, *args):
    return [sys.executable, str(REPO / 'tools/train.py'), str(config), '--work-dir', str(work_dir), *args]


ENV = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')


@requires_shared
def test_declip_config_trains_on_coco128_and_resumes_after_sigkill(config, tmp_path):
    root, path = config
    full = subprocess.run(_cmd(path, tmp_path / 'full'), capture_output=True, text=True, cwd=REPO, env=ENV, timeout=900)
    assert full.returncode == 0, full.stdout[-3000:] + full.stderr[-3000:]
    logs = [json.loads(line) for f in (tmp_path / 'full').glob('*/vis_data/scalars.json')
            for line in f.read_text().splitlines() if line.strip()]
    assert {'loss_cosine', 'loss_context', 'cos_dissim', 'context_dist'} <= set(logs[-1])
    # the same run killed (SIGKILL) once its second checkpoint is on disk, then resumed
    work = tmp_path / 'killed'
    proc = subprocess.Popen(_cmd(path, work), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO, env=ENV)
    deadline = time.time() + 600
    while not (work / 'iter_2.pth').is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (work / 'iter_2.pth').is_file() and not (work / 'declip_export.safetensors').exists()
    resumed = subprocess.run(_cmd(path, work, '--resume'), capture_output=True, text=True, cwd=REPO, env=ENV,
                             timeout=900)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    a = load_state_dict_file(tmp_path / 'full/declip_export.safetensors')
    b = load_state_dict_file(work / 'declip_export.safetensors')
    assert a.keys() == b.keys() and max((a[k] - b[k]).abs().max().item() for k in a) == 0.0
    start = load_state_dict_file(root / 'tiny.safetensors')
    assert a.keys() == start.keys()  # exported in EVA-CLIP's names, as given
    key = 'visual.blocks.1.attn.q_proj.weight'
    assert (a[key] - start[key]).abs().max() > 1e-5  # trained
    for frozen in ('visual.patch_embed.proj.weight', 'visual.head.weight', 'visual.blocks.1.mlp.w3.weight',
                   'visual.blocks.1.attn.k_proj.weight'):  # EVA-CLIP's lock and DeCLIP's freeze list
        # unchanged up to the rounding of the export's 0.7 * student + 0.3 * teacher
        assert (a[frozen] - start[frozen]).abs().max() < 1e-7, frozen
