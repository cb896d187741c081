"""EVA-02 towers (timm, through open_clip) in the dense path: every mode, non-square grids, batch 2, EVA-CLIP
checkpoints by a strict key map, export in either format, golden parity with CLIPSelf's EVA code."""
import pytest
import torch

from ovdense.clip import CheckpointError, build_clip
from ovdense.clip.formats import eva_clip_to_open_clip, open_clip_to_eva_clip
from ovdense.clip.towers import rope_tables
from ovdense.models import OVCLIPViT
from ovdense.models.methods import registered_methods
from ovdense.testing import TINY_EVA_CFG as TINY_EVA, golden_dir, random_images, tiny_method_config, tiny_queries

from ..conftest import requires_shared


def tiny_eva(seed=0):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build_clip(model_cfg=TINY_EVA).eval()


@pytest.mark.parametrize('name', sorted(registered_methods()))
def test_every_method_batch2_and_non_square(name):
    clip = tiny_eva()
    vit = OVCLIPViT(clip, tiny_method_config(name, len(clip.vit_tower().blocks)), pos_interp='bicubic').eval()
    text = tiny_queries(clip) if vit.needs_text else None
    x = random_images(2, 48, 80)  # a 3 x 5 grid (ProxyCLIP: the VFM's 6 x 10)
    with torch.no_grad():
        out = vit.dense_features(x, normalize=True, text=text)
        alone = vit.dense_features(x[1:], normalize=True, text=text)
    assert out.shape == (2, 32, *((6, 10) if name == 'proxyclip' else (3, 5))) and torch.isfinite(out).all()
    assert torch.allclose(out[1:], alone, atol=1e-5)  # images of a batch do not see each other
    if name == 'vanilla':  # at the native size the CLS token is open_clip's (timm's) image embedding
        with torch.no_grad():
            native = random_images(2, 64, 64)
            ours = vit.forward_tokens(native).tokens[:, 0]
            assert torch.allclose(ours, clip.encode_image(native), atol=1e-5)


def test_rope_follows_each_axis_of_a_non_square_grid():
    """(16 x 36 has as many tokens as 24 x 24: the reference silently uses the 24 x 24 table there.)"""
    sin, cos = rope_tables(16, 36, 64, 16)
    assert sin.shape == (16 * 36, 64)
    # row r, column c: the first 32 dims follow r / 16 * 16 = r, the last 32 follow c / 36 * 16
    r, c = 5, 30
    row = r * 36 + c
    f0 = 1.0  # the first frequency
    assert torch.allclose(sin[row, 0], torch.tensor(r * 16 / 16 * f0).sin(), atol=1e-6)
    assert torch.allclose(sin[row, 32], torch.tensor(c / 36 * 16 * f0).sin(), atol=1e-6)
    square = rope_tables(24, 24, 64, 16)[0]
    assert not torch.allclose(sin, square)


def test_eva_clip_checkpoints_load_strictly_and_export_in_either_format(tmp_path):
    src = tiny_eva(0)
    eva_state = open_clip_to_eva_clip(src.model.state_dict())
    assert 'visual.blocks.0.attn.q_bias' in eva_state and 'visual.blocks.1.mlp.w3.weight' in eva_state
    assert eva_clip_to_open_clip(eva_state).keys() == src.model.state_dict().keys()
    wrapped = tmp_path / 'clipself_checkpoint.pt'  # CLIPSelf's main.py: {'state_dict': {'module.' + key}}
    torch.save({'state_dict': {f'module.{k}': v for k, v in eva_state.items()}}, wrapped)
    dst = build_clip(model_cfg=TINY_EVA, checkpoint=wrapped)
    dst.load_weights()
    assert dst.weights_format == 'eva_clip'
    for k, v in src.model.state_dict().items():
        assert torch.equal(v, dst.model.state_dict()[k]), k
    cfg_json, weights = dst.save(tmp_path, 'exported')  # the format that was loaded
    from ovdense.clip import load_state_dict_file
    assert 'visual.blocks.0.attn.v_bias' in load_state_dict_file(weights)
    again = build_clip(config_file=cfg_json, checkpoint=weights)
    again.load_weights()
    assert torch.equal(again.model.visual.trunk.head.weight, src.model.visual.trunk.head.weight)
    _, oc_weights = dst.save(tmp_path, 'as_open_clip', weights_format='open_clip')
    assert 'visual.trunk.blocks.0.attn.v_proj.bias' in load_state_dict_file(oc_weights)
    bad = dict(eva_state)
    bad.pop('visual.blocks.0.attn.q_bias')
    bad['visual.blocks.0.attn.k_bias'] = torch.zeros(64)  # EVA has no k bias
    torch.save(bad, tmp_path / 'wrong.pt')
    with pytest.raises(CheckpointError, match=r'1 missing keys .*q_proj.bias.*1 unexpected keys .*k_bias'):
        build_clip(model_cfg=TINY_EVA, checkpoint=tmp_path / 'wrong.pt').load_weights()


def test_clipself_unlocks_the_last_blocks_of_an_eva_tower():
    from ovdense.models import OVCLIPSelf
    m = OVCLIPSelf(dict(model_cfg=TINY_EVA), train_blocks=1)
    named = list(m.student.clip.model.named_parameters())
    want = {n for n, _ in named if n.startswith(('visual.trunk.blocks.1.', 'visual.trunk.norm.', 'visual.trunk.head.'))}
    assert {n for n, p in named if p.requires_grad} == want


@requires_shared
def test_golden_eva_clipself_case():
    from ovdense.testing.parity import run_case
    checks = run_case(golden_dir() / 'eva_clipself' / 'case_a.pt')
    assert len(checks) >= 35
    bad = [(c.name, c.diff) for c in checks if not c.ok]
    assert not bad, bad
