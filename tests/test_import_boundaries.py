"""Import boundaries: segmentation never needs mmdet, detection registers its own modules, no circles."""
import subprocess
import sys
import textwrap

import pytest

BLOCK_MMDET = '''
import importlib.abc, sys
class _NoMMDet(importlib.abc.MetaPathFinder):  # as if mmdet were not installed
    def find_spec(self, name, path=None, target=None):
        if name == 'mmdet' or name.startswith('mmdet.'):
            raise ModuleNotFoundError(f"No module named '{name}'", name=name)
sys.meta_path.insert(0, _NoMMDet())
'''

SEGMENT = '''
import numpy as np
from ovdense.apis import find_config, inference_model, init_model
model = init_model(find_config('clearclip_tinyclip_synthetic-128'))
res = inference_model(model, np.zeros((64, 80, 3), np.uint8), vocabulary=['grass', 'water'])
assert res.pred_sem_seg.data.shape == (1, 64, 80)
'''


def _run(*parts: str) -> subprocess.CompletedProcess:
    code = '\n'.join(textwrap.dedent(p) for p in parts)
    return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)


def test_segmentation_runs_without_mmdet():
    """A fresh process where mmdet cannot be imported builds and runs a segmentation model."""
    r = _run(BLOCK_MMDET, SEGMENT, "assert not [m for m in sys.modules if m.startswith('mmdet')]\nprint('ok')")
    assert r.returncode == 0 and r.stdout.strip().endswith('ok'), r.stderr[-3000:]


def test_segmentation_imports_no_mmdet_module_of_its_own():
    """With mmdet installed, mmseg itself imports a few mmdet modules (its Mask2Former head tries to);
    building and running an ovdense segmentation model adds none."""
    r = _run('''
        import sys
        import mmseg.models, mmseg.datasets, mmseg.evaluation, mmseg.structures, mmseg.visualization
        before = {m for m in sys.modules if m.startswith('mmdet')}
        ''', SEGMENT, '''
        print(sorted({m for m in sys.modules if m.startswith('mmdet')} - before))
        ''')
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().splitlines()[-1] == '[]'


def test_segmentation_process_imports_no_mmdet_at_all():
    """With mmdet installed, a process that builds and runs an ovdense segmentation model holds no mmdet module:
    mmseg's own models are imported as if mmdet were absent (0.14 GB less memory, measured in the README)."""
    r = _run(SEGMENT, "import sys\nprint(sorted(m for m in sys.modules if m.startswith('mmdet')))")
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().splitlines()[-1] == '[]'


def test_mmseg_heads_built_from_a_config_are_mmdets_subclasses():
    """mmseg's Mask2Former and MaskFormer heads, imported without mmdet by ovdense, are whole again when a config
    builds one: built from mmseg's own Mask2Former config, and exported by mmseg.models."""
    r = _run('''
        import sys
        import mmseg
        import ovdense.models  # noqa: F401
        assert 'mmdet' not in sys.modules
        from mmengine.config import Config
        from mmseg.registry import MODELS
        cfg = Config.fromfile(mmseg.__path__[0] + '/.mim/configs/mask2former/mask2former_r50_8xb2-160k_ade20k-512x512.py')
        head = MODELS.build(cfg.model.decode_head)
        from mmdet.models.dense_heads import Mask2FormerHead, MaskFormerHead
        import mmseg.models.decode_heads as heads
        print(isinstance(head, Mask2FormerHead), issubclass(heads.Mask2FormerHead, Mask2FormerHead),
              issubclass(mmseg.models.MaskFormerHead, MaskFormerHead), issubclass(MODELS.get('MaskFormerHead'), MaskFormerHead))
        ''')
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().splitlines()[-1] == 'True True True True'


def test_importing_detection_makes_mmseg_heads_whole():
    r = _run('''
        import ovdense.models  # noqa: F401
        import mmseg.models.decode_heads as heads
        from mmengine.model import BaseModule
        assert heads.MaskFormerHead.__bases__ == (BaseModule,)  # mmseg's fallback without mmdet
        import ovdense.detection  # noqa: F401
        from mmdet.models.dense_heads import Mask2FormerHead, MaskFormerHead
        from mmseg.registry import MODELS
        print(issubclass(heads.MaskFormerHead, MaskFormerHead), issubclass(MODELS.get('Mask2FormerHead'), Mask2FormerHead))
        ''')
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().splitlines()[-1] == 'True True'


def test_detection_registers_shared_modules_into_mmdet():
    r = _run('''
        import ovdense.models
        from mmdet.registry import MODELS
        assert 'OVCLIPViT' not in MODELS.module_dict  # not into mmdet's own registry before detection is imported
        import ovdense.detection
        names = ['OVCLIPViT', 'OVFViTBackbone', 'OVDenseCLIPViT', 'OVTextEncoder', 'OVCLIPSelf', 'OVFViT',
                 'OVFViTRoIHead', 'OVTextBBoxHead']
        assert all(n in MODELS.module_dict for n in names), [n for n in names if n not in MODELS.module_dict]
        print('ok')
        ''')
    assert r.returncode == 0 and r.stdout.strip() == 'ok', r.stderr[-3000:]


def test_one_custom_imports_line_serves_mmdet_configs():
    """``custom_imports=['ovdense.models']`` in an mmdet config: shared modules are found through mmengine's root
    registry, the detection ones import ovdense.detection when first built; the on-demand list is what it registers."""
    r = _run('''
        import sys
        from mmengine.config import Config
        from mmengine.registry import init_default_scope
        from ovdense.apis import find_config
        cfg = Config.fromfile(str(find_config('fvit_tinyclip_synthetic-128')), import_custom_modules=False)
        cfg.custom_imports = dict(imports=['ovdense.models'], allow_failed_imports=False)
        from mmengine.utils import import_modules_from_strings
        import_modules_from_strings(**cfg.custom_imports)
        assert 'ovdense.detection' not in sys.modules
        init_default_scope('mmdet')
        from mmdet.registry import MODELS
        assert MODELS.get('OVCLIPViT') is not None  # through the root registry
        model = MODELS.build(cfg.model)
        assert type(model).__name__ == 'OVFViT' and 'ovdense.detection' in sys.modules
        import mmdet.registry as det, mmseg.registry as seg
        from ovdense.registry import DETECTION_MODULES
        for kind in ('MODELS', 'DATASETS', 'METRICS', 'TRANSFORMS', 'HOOKS'):
            only = {n for n in getattr(det, kind).module_dict if n.startswith('OV')} - set(getattr(seg, kind).module_dict)
            assert only == set(DETECTION_MODULES.get(kind, ())), (kind, only)
        print('ok')
        ''')
    assert r.returncode == 0 and r.stdout.strip().endswith('ok'), r.stderr[-3000:]


@pytest.mark.parametrize('module', ['ovdense.hooks', 'ovdense.testing.synthetic_eval', 'ovdense.models.text',
                                    'ovdense.evaluation.region', 'ovdense.datasets', 'ovdense.apis',
                                    'ovdense.models.segmentors', 'ovdense.detection', 'ovdense.testing.parity'])
def test_every_module_imports_alone(module):
    """Each module imports first in a fresh process (an import circle fails here)."""
    r = _run(f'import {module}')
    assert r.returncode == 0, r.stderr[-3000:]
