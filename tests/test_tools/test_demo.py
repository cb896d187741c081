import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from ovdense.apis import ImageReadError, read_image
from ovdense.testing import golden_dir

from ..conftest import requires_shared

REPO = Path(__file__).resolve().parents[2]


def make_inputs(d: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    files = {
        'gray': (rng.integers(0, 255, (40, 50), dtype=np.uint8)),
        'rgba': (rng.integers(0, 255, (40, 50, 4), dtype=np.uint8)),
        'deep16': (rng.integers(0, 65535, (40, 50, 3), dtype=np.uint16)),
        'tiny1x1': (rng.integers(0, 255, (1, 1, 3), dtype=np.uint8)),
        'huge': (rng.integers(0, 255, (4000, 6000, 3), dtype=np.uint8)),
    }
    out = {}
    for name, arr in files.items():
        out[name] = d / f'{name}.png'
        cv2.imwrite(str(out[name]), arr)
    out['corrupt'] = d / 'corrupt.png'
    out['corrupt'].write_bytes(b'\x89PNG\r\n\x1a\nthis is not really a png')
    return out


def test_read_image_layouts(tmp_path):
    files = make_inputs(tmp_path)
    for name in ('gray', 'rgba', 'deep16', 'tiny1x1'):
        img = read_image(files[name])
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3, name
    assert read_image(files['deep16']).max() > 200  # scaled down from 16 bit, not truncated
    with pytest.raises(ImageReadError, match='corrupt'):
        read_image(files['corrupt'])
    with pytest.raises(ImageReadError, match='not found'):
        read_image(tmp_path / 'nope.png')


def run_demo(args, cwd=REPO):
    return subprocess.run([sys.executable, 'demo/image_demo.py', *args], cwd=cwd, capture_output=True, text=True)


@requires_shared
def test_demo_bad_inputs_and_outputs(tmp_path):
    inputs = tmp_path / 'in'
    inputs.mkdir()
    files = make_inputs(inputs)
    out = tmp_path / 'out'
    clip = ['--clip-config', str(golden_dir() / 'tiny_clip_config.json'),
            '--checkpoint', str(golden_dir() / 'tiny_clip_seed0.safetensors')]
    proc = run_demo([str(inputs), 'demo/camvid_0016E5_07959.png', '--vocab', 'sky, road, car', '--mode', 'sclip',
                     '--out-dir', str(out), *clip])
    assert proc.returncode == 1, proc.stderr[-2000:]  # one unreadable input is reported, the rest is written
    assert 'corrupt.png' in proc.stderr
    for name in ('gray', 'rgba', 'deep16', 'tiny1x1', 'huge', 'camvid_0016E5_07959'):
        label = cv2.imread(str(out / f'{name}_label.png'), cv2.IMREAD_UNCHANGED)
        overlay = cv2.imread(str(out / f'{name}_overlay.png'))
        src = read_image(files[name]) if name in files else read_image(REPO / 'demo' / f'{name}.png')
        assert label.shape == src.shape[:2] and label.max() <= 2, name
        assert overlay.shape[0] >= src.shape[0] and overlay.shape[1] > src.shape[1], name
    assert not (out / 'corrupt_label.png').exists()
    assert not list(out.glob('*.tmp')) and not list(out.glob('.*'))
    before = sorted(p.name for p in out.iterdir())
    for vocab in (' , ', 'sky, road, sky'):
        bad = run_demo([str(files['gray']), '--vocab', vocab, '--out-dir', str(out), *clip])
        assert bad.returncode == 2 and 'error:' in bad.stderr and 'Traceback' not in bad.stderr
    assert sorted(p.name for p in out.iterdir()) == before  # nothing written or lost
    bad = run_demo([str(files['gray']), '--vocab', 'a, b', '--out-dir', str(out), '--checkpoint', '/nope.pt'])
    assert bad.returncode == 2 and 'checkpoint file not found' in bad.stderr


@requires_shared
def test_detection_demo_draws_boxes_on_a_coco128_photo(tmp_path):
    """--task det with a custom vocabulary: a readable image with boxes and a JSON of the detections.
    (The synthetic-world detector config with an untrained head: this checks the drawing, not accuracy.)"""
    import json
    photo = golden_dir().parent / 'data' / 'coco128' / 'images' / '000000000009.jpg'
    out = tmp_path / 'out'
    (out / '000000000009_det.json').parent.mkdir(parents=True)
    (out / 'keep.txt').write_text('already here')
    cmd = [sys.executable, str(REPO / 'demo/image_demo.py'), str(photo), '--task', 'det', '--vocab',
           'bowl, broccoli, orange', '--config', str(REPO / 'configs/synthetic/fvit_tinyclip_synthetic-128.py'),
           '--score-thr', '0.05', '--out-dir', str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    drawn, orig = cv2.imread(str(out / '000000000009_det.png')), cv2.imread(str(photo))
    assert drawn.shape == orig.shape and np.abs(drawn.astype(int) - orig).mean() > 1.0
    dets = json.loads((out / '000000000009_det.json').read_text())
    assert dets and {d['label'] for d in dets} <= {'bowl', 'broccoli', 'orange'}
    assert all(d['score'] >= 0.05 and len(d['bbox']) == 4 for d in dets)
    assert (out / 'keep.txt').read_text() == 'already here'
    r = subprocess.run(cmd[:5] + ['--vocab', 'bowl, bowl', '--out-dir', str(out)], capture_output=True, text=True,
                       cwd=REPO)
    assert r.returncode == 2 and 'duplicate' in r.stderr
