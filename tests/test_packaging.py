"""An installed (non-editable) wheel carries its configs and assets: ``list_configs`` / ``find_config``
and a shipped config's model work from it, away from the checkout."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_configs_from_an_installed_wheel(tmp_path):
    wheels, site = tmp_path / 'wheels', tmp_path / 'site'
    r = subprocess.run([sys.executable, '-m', 'pip', 'wheel', str(REPO), '--no-deps', '--no-build-isolation', '-q',
                        '-w', str(wheels)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    wheel = next(wheels.glob('ovdense-*.whl'))
    r = subprocess.run([sys.executable, '-m', 'pip', 'install', '--no-deps', '-q', '--target', str(site), str(wheel)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    code = textwrap.dedent(f'''
        import ovdense, numpy as np
        from mmengine.config import Config
        from ovdense.apis import find_config, inference_model, init_model, list_configs, list_models
        assert ovdense.__file__.startswith({str(site)!r}), ovdense.__file__  # the wheel, not the checkout
        from ovdense import _ext  # its compiled PAMR product too
        assert _ext.__file__.startswith({str(site)!r}), _ext.__file__
        names = list_configs()
        assert len(names) > 60 and 'fvit/fvit_vit-b16_ov-coco-640' in names, len(names)
        assert 'catseg_vit-b16_ade847-640' in list_models()  # the zoo's metafiles ship too
        cfg = Config.fromfile(find_config('clearclip', 'voc21'))
        assert cfg.model.text_encoder.vocabulary['file'].startswith({str(site)!r})
        model = init_model(find_config('naclip_tinyclip_synthetic-128'))  # shipped CLIP assets, from the wheel
        assert model.backbone.clip.checkpoint.startswith({str(site)!r})
        res = inference_model(model, np.zeros((40, 50, 3), np.uint8))
        print('ok', len(names), res.pred_sem_seg.data.shape)
        ''')
    env = dict(os.environ, PYTHONPATH=str(site))
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert r.returncode == 0 and r.stdout.startswith('ok'), r.stdout[-2000:] + r.stderr[-3000:]
