"""Every shipped config: parses, inherits at most 2 local levels, names real open_clip models and tags, and builds
(on the meta device: shapes without memory) into a model whose parts fit each other."""
import ast
from pathlib import Path

import open_clip
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.utils import import_modules_from_strings

from ovdense.apis import config_root, list_configs

CONFIGS = list_configs()


def _local_depth(path: Path) -> int:
    """Levels of local config files from ``path`` down (1: no local base)."""
    tree = ast.parse(path.read_text())
    bases = [ast.literal_eval(n.value) for n in tree.body
             if isinstance(n, ast.Assign) and getattr(n.targets[0], 'id', None) == '_base_']
    bases = [b for v in bases for b in ([v] if isinstance(v, str) else v) if '::' not in b]
    return 1 + max((_local_depth((path.parent / b).resolve()) for b in bases), default=0)


def _clips(node):
    """Every ``clip=dict(...)`` (build_clip kwargs) in a model config."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == 'clip' and isinstance(v, dict):
                yield v
            else:
                yield from _clips(v)
    elif isinstance(node, (list, tuple)):
        for v in node:
            yield from _clips(v)


def _build(cfg: Config) -> torch.nn.Module:
    import_modules_from_strings(**cfg.custom_imports)
    scope = cfg.get('default_scope', 'mmseg')
    registry = __import__(f'{scope}.registry', fromlist=['MODELS']).MODELS
    with DefaultScope.overwrite_default_scope(scope), torch.device('meta'):
        return registry.build(cfg.model)


def test_there_are_configs():
    assert len(CONFIGS) > 60 and 'fvit/fvit_eva02-b16_ov-coco-640' in CONFIGS


@pytest.mark.parametrize('name', CONFIGS)
def test_config_parses_and_builds(name):
    path = config_root() / f'{name}.py'
    assert _local_depth(path) <= 2, 'at most 2 local config levels'
    cfg = Config.fromfile(str(path))
    assert cfg.custom_imports.allow_failed_imports is False
    assert cfg.runner_type == 'OVRunner'  # stock tools then load its training checkpoints weights-only
    assert cfg.model.type.startswith('OV'), cfg.model.type
    for clip in _clips(cfg.model):
        if clip.get('model_name'):  # a real architecture and, if named, a real pretrained tag of it
            assert clip['model_name'] in open_clip.list_models(), clip['model_name']
            if clip.get('pretrained'):
                assert clip['pretrained'] in open_clip.list_pretrained_tags_by_model(clip['model_name'])
    model = _build(cfg)
    x = torch.empty(1, 3, 224, 224, device='meta')
    if getattr(model, 'roi_head', None) is not None:  # F-ViT: pyramid -> neck, dense map -> the text head
        feats = model.backbone(x)
        model.neck(feats[:4])
        head = model.roi_head.bbox_head
        if model.roi_head.vlm_roi_extractor is not None:
            assert feats[4].shape[1] == head.embed_dim == model.roi_head.vlm_roi_extractor.out_channels
        assert head.embed_dim == model.text_clip.embed_dim
        vit = model.backbone.vit
        strides = [vit.patch_size / 4, vit.patch_size / 2, vit.patch_size, vit.patch_size * 2]
        assert list(model.roi_head.bbox_roi_extractor.featmap_strides) == strides
        assert list(model.rpn_head.prior_generator.strides) == [(s, s) for s in [*strides, strides[-1] * 2]]
