"""Training checkpoints read weights-only where ovdense loads them (OVRunner, init_model, OVSegInferencer), and
importing ovdense changes nothing else in the process (mmengine's loader, torch's safe globals)."""
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import _load_checkpoint

from ovdense.fileio import checkpoint_load_error, load_checkpoint_file, weights_only_checkpoints
from ovdense.runner import OVRunner


def _training_checkpoint(path):
    """What mmengine's Runner saves besides weights: the message hub's HistoryBuffers (numpy inside)."""
    hub = {'log_scalars': {'train/loss': HistoryBuffer([0.5, 0.25], [1, 1])},
           'runtime_info': {'iter': 2, 'epoch': np.int64(0)}}
    torch.save({'meta': {'iter': 2}, 'state_dict': {'w': torch.ones(2)}, 'message_hub': hub}, path)


def test_importing_ovdense_patches_nothing():
    code = ('import torch, mmseg.models, mmdet.models\n'
            'before = list(torch.serialization.get_safe_globals())\n'
            'import ovdense.models, ovdense.detection\n'
            'from mmengine.runner.checkpoint import CheckpointLoader\n'
            "loader = CheckpointLoader._schemes['']\n"
            "assert loader.__module__ == 'mmengine.runner.checkpoint', loader.__module__\n"
            'added = [g for g in torch.serialization.get_safe_globals() if g not in before]\n'
            'assert not added, added\n')
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]


def test_training_checkpoints_load_in_the_scope_only(tmp_path):
    path = tmp_path / 'iter_2.pth'
    _training_checkpoint(path)
    before = set(torch.serialization.get_safe_globals())  # a set inside torch: its order is not stable
    with pytest.raises(Exception, match='weights_only'):
        _load_checkpoint(str(path), map_location='cpu')  # mmengine's own loader, torch's default: refused
    with weights_only_checkpoints():
        hub = _load_checkpoint(str(path), map_location='cpu')['message_hub']
    assert hub['log_scalars']['train/loss'].current() == 0.25
    assert set(torch.serialization.get_safe_globals()) == before  # nothing outlives the scope
    assert load_checkpoint_file(path)['state_dict']['w'].sum() == 2
    assert checkpoint_load_error(path) is None


def test_ov_runner_is_what_configs_name():
    from mmdet.registry import RUNNERS as DET
    from mmengine.registry import RUNNERS
    from mmseg.registry import RUNNERS as SEG
    assert RUNNERS.get('OVRunner') is OVRunner
    for registry, scope in ((SEG, 'mmseg'), (DET, 'mmdet')):
        from mmengine.registry import DefaultScope
        with DefaultScope.overwrite_default_scope(scope):
            assert registry.get('OVRunner') is OVRunner


@pytest.mark.parametrize('env, expected', [({}, [()]), (dict(keep_freed_memory=1 << 28), [(1 << 28,)]),
                                           (dict(keep_freed_memory=False), [])])
def test_ov_runner_keeps_freed_memory_unless_the_config_says_not(env, expected, monkeypatch, tmp_path):
    from collections import OrderedDict

    from mmengine.registry import DefaultScope

    import ovdense.runner
    calls = []
    monkeypatch.setattr(ovdense.runner, 'keep_freed_memory', lambda *args: calls.append(args) or True)
    # the runner makes its default scope ('mmengine') the current one: not beyond this test
    monkeypatch.setattr(DefaultScope, '_instance_dict', OrderedDict(DefaultScope._instance_dict))
    OVRunner(model=torch.nn.Linear(1, 1), work_dir=str(tmp_path), env_cfg=dict(env, dist_cfg=dict(backend='gloo')))
    assert calls == expected
