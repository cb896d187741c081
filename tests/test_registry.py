import subprocess
import sys

import torch
from mmengine.config import Config

TINY = ("dict(embed_dim=32, quick_gelu=True, vision_cfg=dict(image_size=64, layers=2, width=64, head_width=32, "
        "patch_size=16), text_cfg=dict(context_length=16, vocab_size=49408, width=32, heads=1, layers=1))")


def test_stock_mmseg_config_builds_ovdense_backbone(tmp_path):
    from mmseg.registry import MODELS
    cfg_file = tmp_path / 'fcn_ovclip.py'
    cfg_file.write_text(f"""
_base_ = 'mmseg::_base_/models/fcn_r50-d8.py'
custom_imports = dict(imports=['ovdense.models'], allow_failed_imports=False)
model = dict(
    data_preprocessor=None,
    pretrained=None,  # the stock base names ResNet weights
    backbone=dict(_delete_=True, type='OVCLIPViT', clip=dict(model_cfg={TINY}), out_indices=(1,)),
    decode_head=dict(in_channels=64, in_index=0, channels=16, num_convs=1, norm_cfg=None),
    auxiliary_head=None)
""")
    cfg = Config.fromfile(str(cfg_file))
    model = MODELS.build(cfg.model)
    assert type(model.backbone).__name__ == 'OVCLIPViT'
    assert model._forward(torch.randn(2, 3, 64, 64)).shape == (2, 19, 4, 4)


def test_stock_mmdet_config_builds_ovdense_backbone(tmp_path):
    from mmdet.registry import MODELS
    cfg_file = tmp_path / 'faster_ovclip.py'
    cfg_file.write_text(f"""
_base_ = 'mmdet::_base_/models/faster-rcnn_r50_fpn.py'
custom_imports = dict(imports=['ovdense.detection'], allow_failed_imports=False)  # mmdet configs: the detection entry
model = dict(backbone=dict(_delete_=True, type='OVCLIPViT', clip=dict(model_cfg={TINY}), out_indices=(0, 1)))
""")
    cfg = Config.fromfile(str(cfg_file))
    bb = MODELS.build(cfg.model.backbone)
    feats = bb(torch.randn(2, 3, 64, 64))
    assert [f.shape[1] for f in feats] == [64, 64, 32]


def test_import_is_light():
    code = ('import time, sys; t = time.time(); import ovdense; dt = time.time() - t; '
            'heavy = [m for m in ("mmdet", "mmseg", "open_clip", "mmcv") if m in sys.modules]; '
            'print(dt, heavy)')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout.split()
    assert out[1:] == ['[]'], out  # none of the heavy libraries imported
