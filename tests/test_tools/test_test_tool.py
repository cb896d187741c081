import json
import subprocess
import sys
from pathlib import Path

from ovdense.testing import golden_dir, shared_dir

from ..conftest import requires_shared

REPO = Path(__file__).resolve().parents[2]


@requires_shared
def test_tools_test_on_camvid_with_overlays(tmp_path):
    cmd = [sys.executable, 'tools/test.py', 'configs/clearclip/clearclip_vit-b16_camvid-448.py',
           '--clip-config', str(golden_dir() / 'tiny_clip_config.json'),
           '--checkpoint', str(golden_dir() / 'tiny_clip_seed0.safetensors'),
           '--data-root', str(shared_dir() / 'data' / 'camvid'), '--max-images', '2',
           '--work-dir', str(tmp_path), '--show-dir', 'vis',
           '--cfg-options', 'test_dataloader.batch_size=2']
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / 'metrics.json').read_text())
    assert set(metrics) >= {'aAcc', 'mIoU', 'mAcc'} and 0 <= metrics['mIoU'] <= 100
    assert len(list((tmp_path / 'vis').rglob('*.png'))) == 2
