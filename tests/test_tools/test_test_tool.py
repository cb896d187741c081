import json
import subprocess
import sys
from pathlib import Path

import pytest

from ovdense.testing import golden_dir, shared_dir

from ..conftest import requires_shared

REPO = Path(__file__).resolve().parents[2]


@requires_shared
def test_tools_test_on_camvid_with_overlays(tmp_path):
    cmd = [sys.executable, 'tools/test.py', 'configs/clearclip/clearclip_vit-b16_camvid-448.py',
           '--clip-config', str(golden_dir() / 'tiny_clip_config.json'),
           '--clip-checkpoint', str(golden_dir() / 'tiny_clip_seed0.safetensors'),
           '--data-root', str(shared_dir() / 'data' / 'camvid'), '--max-images', '2',
           '--work-dir', str(tmp_path), '--show-dir', 'vis',
           # no pixel reaches a probability of 1.01: every pixel is the background index 0 (sky), so the
           # metrics follow from the ground truth alone
           '--cfg-options', 'test_dataloader.batch_size=2', 'model.prob_thd=1.01']
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / 'metrics.json').read_text())
    import cv2
    import numpy as np
    gt = np.concatenate([cv2.imread(str(p), cv2.IMREAD_UNCHANGED).ravel() for p in
                         sorted((shared_dir() / 'data/camvid/valannot').glob('*.png'))[:2]])
    gt = gt[gt != 11]  # unlabelled
    sky = (gt == 0).mean()
    assert metrics['aAcc'] == pytest.approx(100 * sky, abs=0.01)
    assert metrics['mIoU'] == pytest.approx(100 * sky / len(np.unique(gt)), abs=0.01)  # IoU 0 for every other class
    assert metrics['mAcc'] == pytest.approx(100 / len(np.unique(gt)), abs=0.01)
    assert len(list((tmp_path / 'vis').rglob('*.png'))) == 2


@pytest.mark.parametrize('tool', ['test', 'train'])
def test_user_mistakes_are_one_line(tool, tmp_path):
    """A missing config, --cfg-options without '=', a --work-dir that is a file, a missing data root: one line naming
    it, before any model is built."""
    import subprocess
    import sys
    config = 'configs/synthetic/naclip_tinyclip_synthetic-128.py' if tool == 'test' else \
        'configs/synthetic/textseg_tinyclip_synthetic-128.py'
    (tmp_path / 'a_file').write_text('x')
    (tmp_path / 'zero.pth').write_bytes(b'')
    import os
    import torch

    class Evil:  # a pickle that would run a command when unpickled
        def __reduce__(self):
            return os.system, (f'touch {tmp_path / "pwned"}',)
    torch.save({'state_dict': {'x': Evil()}}, tmp_path / 'evil.pth')
    cases = [([str(tmp_path / 'missing.py')], 'error: config not found'),
             ([config, '--cfg-options', 'model.logit_scale'], "takes key=value pairs, got ['model.logit_scale']"),
             ([config, '--work-dir', str(tmp_path / 'a_file')], 'is a file, not a folder'),
             *([([config, str(tmp_path / 'missing.pth')], 'checkpoint not found: ' + str(tmp_path / 'missing.pth')),
                ([config, str(tmp_path / 'zero.pth')], 'cannot be loaded: the file is empty or truncated'),
                ([config, str(tmp_path / 'evil.pth')], 'cannot be loaded: it holds objects a weights-only load '
                                                        'refuses (Trying to load unsupported GLOBAL posix.system')]
               if tool == 'test' else []),
             ([config, '--work-dir', str(tmp_path / 'w'), '--cfg-options',
               f'{tool}_dataloader.dataset.data_root={tmp_path / "nowhere"}'], 'not found: ' + str(tmp_path / 'nowhere'))]
    for args, said in cases:
        proc = subprocess.run([sys.executable, f'tools/{tool}.py', *args], capture_output=True, text=True)
        assert proc.returncode != 0 and said in proc.stderr and 'Traceback' not in proc.stderr, (args, proc.stderr[-800:])
    assert not (tmp_path / 'pwned').exists()
