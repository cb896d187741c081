"""Dense methods as components: the registry, a user's own method from a config."""
from pathlib import Path

import numpy as np
import torch

from ovdense.apis import inference_model, init_model
from ovdense.models.methods import registered_methods
from ovdense.testing import random_images

REPO = Path(__file__).resolve().parents[2]


def test_every_shipped_method_is_registered():
    assert {'vanilla', 'maskclip', 'sclip', 'clearclip', 'naclip', 'proxyclip'} <= set(registered_methods())


def test_a_users_method_from_its_own_module_runs_through_the_api(tmp_path):
    cfg = tmp_path / 'keykey_tinyclip_synthetic-128.py'
    cfg.write_text(f"_base_ = ['{REPO}/configs/synthetic/naclip_tinyclip_synthetic-128.py']\n"
                   "custom_imports = dict(imports=['ovdense.models', 'tests.test_models.user_method'], "
                   "allow_failed_imports=False)\n"
                   "model = dict(backbone=dict(method=dict(_delete_=True, type='KeyKeyAttention', temperature=0.5)))\n")
    model = init_model(str(cfg))
    assert type(model.backbone.method).__name__ == 'KeyKeyAttention' and 'keykey' in registered_methods()
    image = (random_images(1, 128, 128)[0].permute(1, 2, 0).numpy() * 60 + 128).clip(0, 255).astype(np.uint8)
    res = inference_model(model, image, vocabulary=['grass', 'sand', 'circle'])
    assert res.pred_sem_seg.data.shape == (1, 128, 128) and res.metainfo['classes'] == ('grass', 'sand', 'circle')
    # the method is what ran: its last block, written out here
    bb = model.backbone
    x = random_images(1, 128, 128)
    with torch.no_grad():
        trunk = bb.trunk(x, stop=-1)
        blk = bb.tower.blocks[-1]
        _, k, v = bb.qkv(blk, bb.ln(blk.ln_1, trunk.tokens))
        manual = bb.project(bb.out(blk, torch.softmax(k @ k.transpose(-2, -1) / k.shape[-1] ** 0.5 / 0.5, -1) @ v))
        assert torch.allclose(bb.forward_tokens(x).tokens, manual, atol=1e-5)

