"""ONNX export of a training-free segmentor with a fixed vocabulary: the graph ONNX Runtime runs equals ovdense's own
inference (windows as one batch, text embeddings folded in, batch of 2, non-square input); what the graph cannot hold
is refused by name."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ovdense.apis import find_config, init_model

onnx = pytest.importorskip('onnx', reason='onnx is not installed (tools/install.sh installs it)')
pytest.importorskip('onnxruntime', reason='onnxruntime is not installed (tools/install.sh installs it)')

REPO = Path(__file__).resolve().parents[1]
VOCAB = ['grass', ['circle', 'ring'], 'star', 'water']
WINDOWS = {'model.slide_crop': 64, 'model.slide_stride': 32}  # 96 x 128: 6 windows, one batch in the graph


@pytest.mark.parametrize('method', ['clearclip', 'naclip', 'proxyclip'])
def test_onnx_runtime_equals_inference(method, tmp_path):
    from ovdense.export import export_onnx, onnx_runtime_check
    model = init_model(find_config(f'{method}_tinyclip_synthetic-128'), cfg_options=WINDOWS)
    path = tmp_path / 'model.onnx'
    export_onnx(model, path, size=(96, 128), vocabulary=VOCAB, batch=2)
    diff, mismatches = onnx_runtime_check(model, path, size=(96, 128), vocabulary=VOCAB, batch=2)
    assert diff <= 1e-4 and mismatches == 0, (diff, mismatches)
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(meta['classes']) == ['grass', 'circle', 'star', 'water'] and json.loads(meta['input_size']) == [96, 128]
    assert len(json.loads(meta['mean'])) == 3 and meta['color_order'] == 'RGB'


def test_export_refuses_what_the_graph_cannot_hold(tmp_path):
    from ovdense.export import export_onnx
    path = tmp_path / 'model.onnx'
    pamr = init_model(find_config('naclip_tinyclip_synthetic-128'), cfg_options={'model.pamr.num_iter': 2})
    with pytest.raises(ValueError, match='no PAMR and no area rule'):
        export_onnx(pamr, path, size=(64, 64), vocabulary=VOCAB)
    lof = init_model(find_config('scclip_tinyclip_synthetic-128'))
    with pytest.raises(ValueError, match="OVSCCLIP does not export to ONNX .*quantile"):
        export_onnx(lof, path, size=(64, 64), vocabulary=VOCAB)
    assert not path.exists()


def test_export_tool_checks_against_pytorch(tmp_path):
    out = tmp_path / 'clearclip.onnx'
    r = subprocess.run([sys.executable, 'tools/export_onnx.py', str(find_config('clearclip_tinyclip_synthetic-128')),
                        '--texts', 'grass, circle | ring, star', '--size', '96', '128', '--out', str(out), '--check',
                        '--cfg-options', 'model.slide_crop=64', 'model.slide_stride=32'],
                       cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f'wrote {out}' in r.stdout and 'labels differing = 0' in r.stdout and out.is_file()
