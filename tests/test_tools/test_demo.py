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
    import json
    inputs = tmp_path / 'in'
    inputs.mkdir()
    files = make_inputs(inputs)
    out = tmp_path / 'out'
    clip = ['--clip-config', str(golden_dir() / 'tiny_clip_config.json'),
            '--clip-checkpoint', str(golden_dir() / 'tiny_clip_seed0.safetensors')]
    proc = run_demo([str(inputs), 'demo/camvid_0016E5_07959.png', '--texts', 'sky, road, car', '--mode', 'sclip',
                     '--out-dir', str(out), '--palette', 'voc', '--opacity', '1', *clip])
    assert proc.returncode == 1, proc.stderr[-2000:]  # one unreadable input is reported, the rest is written
    assert 'corrupt.png' in proc.stderr and 'wrote results for 6 of 7 images' in proc.stdout
    for name in ('gray', 'rgba', 'deep16', 'tiny1x1', 'huge', 'camvid_0016E5_07959'):
        label = cv2.imread(str(out / f'{name}_label.png'), cv2.IMREAD_UNCHANGED)
        overlay = cv2.imread(str(out / f'{name}_overlay.png'))
        src = read_image(files[name]) if name in files else read_image(REPO / 'demo' / f'{name}.png')
        assert label.shape == src.shape[:2] and label.max() <= 2, name
        assert overlay.shape[0] >= src.shape[0] and overlay.shape[1] > src.shape[1], name
        voc_bgr = np.array([[0, 0, 0], [0, 0, 128], [0, 128, 0]])  # mmseg's VOC palette, opaque (--opacity 1)
        assert np.array_equal(overlay[:label.shape[0], :label.shape[1]], voc_bgr[label]), name
        side = json.loads((out / f'{name}_label.json').read_text())  # the vocabulary of the indices
        assert side['classes'] == [['sky'], ['road'], ['car']] and side['config'].endswith('sclip_vit-b16_context59-336.py')
        assert abs(sum(side['shares_percent'].values()) - 100) < 0.1
    assert not (out / 'corrupt_label.png').exists()
    assert not list(out.glob('*.tmp')) and not list(out.glob('.*'))
    before = sorted(p.name for p in out.iterdir())
    for vocab in (' , ', 'sky, road, sky'):
        bad = run_demo([str(files['gray']), '--texts', vocab, '--out-dir', str(out), *clip])
        assert bad.returncode == 2 and 'error:' in bad.stderr and 'Traceback' not in bad.stderr
    assert sorted(p.name for p in out.iterdir()) == before  # nothing written or lost
    bad = run_demo([str(files['gray']), '--vocab', 'a, b', '--out-dir', str(out), '--checkpoint', '/nope.pt'])
    assert bad.returncode == 2 and 'checkpoint file not found' in bad.stderr  # the old names still work, warned
    assert '--vocab is deprecated' in bad.stderr and '--checkpoint is deprecated' in bad.stderr
    (tmp_path / 'a_file').write_text('x')  # an --out-dir that is a file: refused before any model is built
    bad = run_demo([str(files['gray']), '--texts', 'a, b', '--out-dir', str(tmp_path / 'a_file'), *clip])
    assert bad.returncode == 2 and 'is not a folder' in bad.stderr and 'Traceback' not in bad.stderr
    for args, said in [([str(tmp_path / 'nope.png')], 'input not found: '), ([str(files['gray']), '--device', 'banana'],
                       "unknown device 'banana'; this machine has: ['cpu'"),
                       ([str(files['gray']), '--device', 'cuda'], "device 'cuda': no GPU here"),
                       ([str(files['gray']), '--palette', 'nope'], "unknown palette 'nope'; valid: ['ovdense', 'ade'"),
                       ([str(files['gray']), '--opacity', '2'], '--opacity must be in [0, 1], got 2.0'),
                       ([str(files['gray']), '--show'], '--show needs a display')]:
        bad = run_demo([*args, '--texts', 'a, b', '--out-dir', str(out), '--clip-checkpoint', '/nope.pt'])  # first
        assert bad.returncode in (1, 2) and said in bad.stderr and 'Traceback' not in bad.stderr, bad.stderr[-500:]


@requires_shared
def test_demo_same_stems_and_long_names(tmp_path):
    """d1/x.png, d2/x.png, d2/x.jpg: three results, none overwritten; a 2,000-character class name is
    warned about, kept whole in the sidecar, cut in the legend."""
    import json
    rng = np.random.default_rng(1)
    paths = [tmp_path / 'd1/x.png', tmp_path / 'd2/x.png', tmp_path / 'd2/x.jpg']
    for i, p in enumerate(paths):
        p.parent.mkdir(exist_ok=True)
        cv2.imwrite(str(p), rng.integers(0, 255, (32 + 8 * i, 48, 3), dtype=np.uint8))
    long = 'very ' * 400
    out = tmp_path / 'out'
    clip = ['--clip-config', str(golden_dir() / 'tiny_clip_config.json'),
            '--clip-checkpoint', str(golden_dir() / 'tiny_clip_seed0.safetensors')]
    r = run_demo([*map(str, paths), '--texts', f'sky, {long.strip()}', '--mode', 'clearclip', '--out-dir', str(out), *clip])
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'longer than the text context' in r.stderr
    names = sorted(p.name for p in out.glob('*_label.png'))
    assert names == ['d1__x_png_label.png', 'd2__x_jpg_label.png', 'd2__x_png_label.png']
    for p, n in zip(paths, ['d1__x_png', 'd2__x_png', 'd2__x_jpg']):
        assert cv2.imread(str(out / f'{n}_label.png'), cv2.IMREAD_UNCHANGED).shape == cv2.imread(str(p)).shape[:2]
        side = json.loads((out / f'{n}_label.json').read_text())
        assert side['image'] == str(p) and side['classes'][1] == [long.strip()]
        overlay = cv2.imread(str(out / f'{n}_overlay.png'))
        assert overlay.shape[1] < 48 + 600  # the legend stays readable


@requires_shared
def test_detection_demo_draws_boxes_on_a_coco128_photo(tmp_path):
    """--task det with a custom vocabulary: refused without trained weights; with --allow-untrained (the
    synthetic-world detector config, untrained head: this checks the drawing, not accuracy) a readable image
    with boxes and a JSON of the detections."""
    import json
    photo = golden_dir().parent / 'data' / 'coco128' / 'images' / '000000000009.jpg'
    out = tmp_path / 'out'
    (out / '000000000009_det.json').parent.mkdir(parents=True)
    (out / 'keep.txt').write_text('already here')
    cmd = [sys.executable, str(REPO / 'demo/image_demo.py'), str(photo), '--task', 'det', '--texts',
           'bowl, broccoli, orange', '--config', str(REPO / 'configs/synthetic/fvit_tinyclip_synthetic-128.py'),
           '--pred-score-thr', '0.05', '--out-dir', str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 2 and 'has trained parts and no checkpoint' in r.stderr and 'Traceback' not in r.stderr
    assert sorted(p.name for p in out.iterdir()) == ['keep.txt']
    r = subprocess.run(cmd + ['--allow-untrained'], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'untrained weights' in r.stderr
    drawn, orig = cv2.imread(str(out / '000000000009_det.png')), cv2.imread(str(photo))
    assert drawn.shape == orig.shape and np.abs(drawn.astype(int) - orig).mean() > 1.0
    result = json.loads((out / '000000000009_det.json').read_text())
    dets = result['detections']
    assert result['classes'] == ['bowl', 'broccoli', 'orange']
    assert dets and {d['label'] for d in dets} <= {'bowl', 'broccoli', 'orange'}
    assert all(d['score'] >= 0.05 and len(d['bbox']) == 4 for d in dets)
    assert (out / 'keep.txt').read_text() == 'already here'
    r = subprocess.run(cmd[:5] + ['--vocab', 'bowl, bowl', '--out-dir', str(out)], capture_output=True, text=True,
                       cwd=REPO)
    assert r.returncode == 2 and 'duplicate' in r.stderr


def test_an_existing_file_name_with_glob_characters_is_itself(tmp_path):
    import importlib.util
    spec = importlib.util.spec_from_file_location('image_demo', Path(__file__).parents[2] / 'demo' / 'image_demo.py')
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    for name in ('shot[1].png', 'shot1.png', 'shot2.png'):
        (tmp_path / name).write_bytes(b'')
    assert demo.collect([str(tmp_path / 'shot[1].png')]) == [tmp_path / 'shot[1].png']  # not shot1.png
    assert demo.collect([str(tmp_path / 'shot[12].png')]) == [tmp_path / 'shot1.png', tmp_path / 'shot2.png']
