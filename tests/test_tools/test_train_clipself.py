"""CLIPSelf through tools/train.py: resume parity and a 2-process (torchrun, gloo) run on CPU."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ovdense.clip import build_clip, load_state_dict_file
from ovdense.datasets.synthetic import WorldConfig, export
from ovdense.testing import TINY_CLIP_CFG, TINY_EVA_CFG

REPO = Path(__file__).resolve().parents[2]
BASES = [str(REPO / 'configs/_base_/models/clipself.py'), str(REPO / 'configs/_base_/datasets/synthetic_clipself.py')]


# the tower's patch embedding in the file format each one is given in (EVA-02: EVA-CLIP / CLIPSelf names)
TOWERS = {'openai': (TINY_CLIP_CFG, 'open_clip', 'visual.conv1.weight'),
          'eva02': (TINY_EVA_CFG, 'eva_clip', 'visual.patch_embed.proj.weight')}


def _setup(tmp_path_factory, tower):
    model_cfg, weights_format, _ = TOWERS[tower]
    root = tmp_path_factory.mktemp(f'clipself_{tower}')
    export(root, split='train', num_images=8, seed=5, cfg=WorldConfig(size=64), progress=False)
    torch.manual_seed(0)
    cfg_json, weights = build_clip(model_cfg=model_cfg).save(root, 'tiny', weights_format=weights_format)
    config = root / 'tiny_clipself.py'
    config.write_text(f'''_base_ = {BASES!r}
model = dict(clip=dict(_delete_=True, config_file={str(cfg_json)!r}, checkpoint={str(weights)!r}),
             text_encoder=dict(templates=['{{}}']))
train_dataloader = dict(batch_size=2, dataset=dict(
    ann_file={str(root / 'train/instances.json')!r}, img_dir={str(root / 'train/images')!r},
    input_size=96, crop_size=64, max_split=3, max_boxes=3, repeats=4))
test_dataloader = None
test_evaluator = None
test_cfg = None
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = []
train_cfg = dict(max_iters=4)
default_hooks = dict(checkpoint=dict(interval=2), logger=dict(interval=1))
custom_hooks = [dict(type='OVInitWeightsHook'), dict(type='OVExportCLIPHook', name='export')]
env_cfg = dict(dist_cfg=dict(backend='gloo'))
''')
    return root, config, tower


@pytest.fixture(scope='module', params=sorted(TOWERS))
def each_tower(request, tmp_path_factory):
    return _setup(tmp_path_factory, request.param)


@pytest.fixture(scope='module')
def setup(tmp_path_factory):  # checkpoint and process-group handling do not depend on the tower
    return _setup(tmp_path_factory, 'openai')


def _train(config, work_dir, *args, nproc=1, ok=True):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')
    if nproc == 1:
        cmd = [sys.executable, str(REPO / 'tools/train.py'), str(config), '--work-dir', str(work_dir), *args]
    else:
        cmd = [sys.executable, '-m', 'torch.distributed.run', f'--nproc_per_node={nproc}', '--master_port=29517',
               str(REPO / 'tools/train.py'), str(config), '--work-dir', str(work_dir), '--launcher', 'pytorch', *args]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    if ok:
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def _scalars(work_dir):
    files = sorted(Path(work_dir).glob('*/vis_data/scalars.json'))
    rows = [json.loads(line) for f in files for line in f.read_text().splitlines() if line.strip()]
    return {r['step']: r for r in rows if 'cos_dissim' in r}


def test_resume_gives_the_same_weights(each_tower, tmp_path):
    root, config, tower = each_tower
    _train(config, tmp_path / 'full')
    _train(config, tmp_path / 'part', '--cfg-options', 'train_cfg.max_iters=2')
    assert (tmp_path / 'part/iter_2.pth').is_file()
    _train(config, tmp_path / 'part', '--resume', '--cfg-options', 'train_cfg.max_iters=4')
    a = load_state_dict_file(tmp_path / 'full/export.safetensors')
    b = load_state_dict_file(tmp_path / 'part/export.safetensors')
    assert a.keys() == b.keys()
    diff = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    assert diff == 0.0, diff
    start = load_state_dict_file(root / 'tiny.safetensors')
    assert start.keys() == a.keys()  # exported in the format it was given in
    patch_embed = TOWERS[tower][2]
    assert (a[patch_embed] - start[patch_embed]).abs().max() > 0  # it did train
    assert not list((tmp_path / 'full').glob('.*.tmp'))  # atomic writes leave no temporaries


def test_resume_from_a_truncated_checkpoint_names_the_last_good_one(setup, tmp_path):
    _, config, _ = setup
    work = tmp_path / 'work'
    _train(config, work, '--cfg-options', 'train_cfg.max_iters=4')
    last = work / 'iter_4.pth'
    assert (work / 'last_checkpoint').read_text().strip().endswith('iter_4.pth')
    last.write_bytes(last.read_bytes()[:1000])  # a run killed while copying, a full disk...
    r = _train(config, work, '--resume', '--cfg-options', 'train_cfg.max_iters=6', ok=False)
    assert r.returncode != 0 and 'Traceback' not in r.stderr
    assert f'checkpoint {last} does not load' in r.stderr and f'--resume {work / "iter_2.pth"}' in r.stderr
    _train(config, work, '--resume', str(work / 'iter_2.pth'), '--cfg-options', 'train_cfg.max_iters=6')
    assert (work / 'iter_6.pth').is_file()


def test_resume_after_a_kill_that_emptied_last_checkpoint(setup, tmp_path):
    """mmengine truncates ``last_checkpoint`` before writing it: a kill in between leaves it empty while the
    checkpoint it was about to name is whole. --resume continues from the newest checkpoint that loads."""
    _, config, _ = setup
    work = tmp_path / 'work'
    _train(config, work, '--cfg-options', 'train_cfg.max_iters=2')
    (work / 'last_checkpoint').write_text('')
    written = {p.name: p.stat().st_mtime_ns for p in work.glob('iter_*.pth')}
    r = _train(config, work, '--resume', '--cfg-options', 'train_cfg.max_iters=3')
    assert f'resuming from the newest checkpoint that loads, {work / "iter_2.pth"}' in r.stdout + r.stderr
    assert (work / 'iter_3.pth').is_file()  # it went on from iteration 2, writing none of the earlier again
    assert {n: (work / n).stat().st_mtime_ns for n in written} == written


def test_two_processes_match_one_process(setup, tmp_path):
    _, config, _ = setup
    _train(config, tmp_path / 'one', '--cfg-options', 'train_cfg.max_iters=3')
    _train(config, tmp_path / 'two', '--cfg-options', 'train_cfg.max_iters=3', 'train_dataloader.batch_size=1',
           nproc=2)
    one, two = _scalars(tmp_path / 'one'), _scalars(tmp_path / 'two')
    assert sorted(one) == sorted(two) == [1, 2, 3]
    for step in one:  # the same global batch of 2 images: the same loss, step after step
        assert abs(one[step]['cos_dissim'] - two[step]['cos_dissim']) < 1e-5, (step, one[step], two[step])
