"""A full disk (ENOSPC) while the demo or training writes: one line saying what is intact and what to do, no
traceback, nothing half-written. The disk is simulated by making the writer fail as the OS does."""
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from ovdense.apis import find_config
from ovdense.datasets.synthetic import export

REPO = Path(__file__).resolve().parents[2]

# runs a tool with the disk full from the n-th file ovdense.visualization writes on, and for every checkpoint
FULL_DISK = '''
import errno, os, runpy, sys
import ovdense.fileio as fileio, ovdense.visualization as vis
tool, fail_at = sys.argv[1], int(sys.argv[2])
calls, original = [0], vis.write_bytes_atomic

def full(path, *args):
    calls[0] += 1
    if calls[0] >= fail_at:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    return original(path, *args)

def full_put(backend, obj, path):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
vis.write_bytes_atomic, fileio.OVAtomicLocalBackend.put = full, full_put
sys.argv = [tool, *sys.argv[3:]]
runpy.run_path(tool, run_name='__main__')
'''


def _run(tool: str, fail_at: int, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-c', FULL_DISK, tool, str(fail_at), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=900)


def test_demo_stops_with_what_is_complete(tmp_path):
    inputs = tmp_path / 'in'
    inputs.mkdir()
    for i in range(3):
        cv2.imwrite(str(inputs / f'img{i}.png'), np.random.default_rng(i).integers(0, 255, (40, 50, 3), np.uint8))
    out = tmp_path / 'out'
    # each image writes 3 files (overlay, label map, its JSON): the 5th write is the second image's
    r = _run('demo/image_demo.py', 5, str(inputs), '--texts', 'circle, star, grass', '--mode', 'naclip',
             '--config', str(find_config('naclip_tinyclip_synthetic-128')), '--out-dir', str(out))
    assert r.returncode == 1 and 'Traceback' not in r.stderr, r.stderr[-3000:]
    assert 'no space left on the device writing' in r.stderr and 'the results of 1 of 3 images are complete' in r.stderr
    written = sorted(p.name for p in out.iterdir())
    assert {'img0_overlay.png', 'img0_label.png', 'img0_label.json'} <= set(written), written
    assert not [n for n in written if n.endswith('.tmp') or n.startswith('.')], written


def test_training_stops_with_the_resume_hint(tmp_path):
    data = export(tmp_path / 'data', split='train', num_images=4, seed=0, progress=False)
    work = tmp_path / 'work'
    r = _run('tools/train.py', 1, str(find_config('textseg_tinyclip_synthetic-128')), '--work-dir', str(work),
             '--cfg-options', f'train_dataloader.dataset.data_root={data}', f'val_dataloader.dataset.data_root={data}',
             'train_dataloader.batch_size=2', 'train_cfg.max_iters=2', 'train_cfg.val_interval=100',
             'default_hooks.checkpoint.interval=1')
    assert r.returncode == 1 and 'Traceback' not in r.stderr, r.stderr[-3000:]
    assert 'error: no space left on the device writing' in r.stderr and 'iter_1.pth' in r.stderr
    assert 'then --resume' in r.stderr
    assert not list(work.glob('*.pth')) and not list(work.glob('.*.tmp'))
