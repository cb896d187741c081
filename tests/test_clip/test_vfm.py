"""Vision foundation models through timm: DINO / DINOv2 (with registers) / MAE ViTs, tiny and random."""
import pytest
import torch
from safetensors.torch import save_file

from ovdense.clip import CheckpointError, PretrainedWeightsUnavailable, build_vfm
from ovdense.clip.vfm import dino_pos_embed

TINY = dict(embed_dim=32, depth=1, num_heads=2)
NAMES = ['vit_base_patch8_224.dino', 'vit_small_patch14_dinov2.lvd142m', 'vit_small_patch14_reg4_dinov2.lvd142m',
         'vit_base_patch16_224.mae']


@pytest.mark.parametrize('name', NAMES)
def test_native_size_is_timms_forward_and_any_size_runs(name):
    torch.manual_seed(0)
    vfm = build_vfm(name, pretrained=False, model_kwargs=TINY).eval()
    x = torch.randn(2, 3, *vfm.model.patch_embed.img_size)
    ref = vfm.model.forward_features(x)[:, vfm.model.num_prefix_tokens:]
    ours = vfm.patch_features(x)
    assert torch.allclose(ours.flatten(2).transpose(1, 2), ref, atol=1e-6)
    p = vfm.patch_size
    odd = vfm.patch_features(torch.randn(2, 3, 5 * p + 3, 9 * p))  # non-square, not a multiple of the patch
    assert odd.shape == (2, 32, 5, 9)
    assert torch.allclose(vfm.patch_features(x[1:]), ours[1:], atol=1e-5)  # batch 2 == batch 1


def test_dino_pos_embed_is_dinos_interpolation():
    pos = torch.randn(1, 1 + 28 * 28, 8)
    assert dino_pos_embed(pos, (28, 28)) is pos
    out = dino_pos_embed(pos, (42, 30))
    grid = pos[:, 1:].reshape(1, 28, 28, 8).permute(0, 3, 1, 2)
    ref = torch.nn.functional.interpolate(grid, scale_factor=(42.1 / 28, 30.1 / 28), mode='bicubic', align_corners=False)
    assert torch.equal(out[:, 1:], ref.permute(0, 2, 3, 1).reshape(1, -1, 8)) and torch.equal(out[:, :1], pos[:, :1])


def test_weights_load_strictly_with_dino_keys(tmp_path):
    torch.manual_seed(1)
    src = build_vfm('vit_base_patch8_224.dino', pretrained=False, model_kwargs=TINY)
    state = src.model.state_dict()
    assert {'cls_token', 'pos_embed', 'patch_embed.proj.weight', 'blocks.0.attn.qkv.weight', 'norm.bias'} <= set(state)
    save_file({f'module.{k}': v.contiguous() for k, v in state.items()}, str(tmp_path / 'dino.safetensors'))
    dst = build_vfm('vit_base_patch8_224.dino', checkpoint=tmp_path / 'dino.safetensors', model_kwargs=TINY)
    dst.load_weights()
    assert all(torch.equal(v, dst.model.state_dict()[k]) for k, v in state.items())
    del state['norm.bias']
    state['head.extra'] = torch.zeros(1)
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / 'bad.safetensors'))
    bad = build_vfm('vit_base_patch8_224.dino', checkpoint=tmp_path / 'bad.safetensors', model_kwargs=TINY)
    with pytest.raises(CheckpointError, match=r"1 missing keys \(e.g. \['norm.bias'\]\), 1 unexpected keys"):
        bad.load_weights()
    with pytest.raises(CheckpointError, match='not found'):
        build_vfm('vit_base_patch8_224.dino', checkpoint=tmp_path / 'nope.pth', model_kwargs=TINY).load_weights()


def test_offline_without_weights_says_how(monkeypatch):
    import huggingface_hub
    monkeypatch.setattr(huggingface_hub, 'try_to_load_from_cache', lambda *a, **k: None)  # an empty cache
    vfm = build_vfm('vit_base_patch8_224.dino', model_kwargs=TINY)  # building reads nothing
    with pytest.raises(PretrainedWeightsUnavailable, match=r"'vit_base_patch8_224.dino' are not cached.*checkpoint=PATH"):
        vfm.load_weights()
    with pytest.raises(ValueError, match=r"unsupported VFM 'resnet50'; valid timm architectures: \["):
        build_vfm('resnet50')


def test_sam_image_encoder_at_its_own_input_size():
    torch.manual_seed(2)
    vfm = build_vfm('samvit_base_patch16.sa1b', pretrained=False,
                    model_kwargs=dict(embed_dim=32, depth=2, num_heads=2, img_size=64, global_attn_indexes=(1,),
                                      window_size=4, neck_chans=16)).eval()
    x = torch.randn(2, 3, 40, 56)  # any window: resized to the encoder's 64 px, as ProxyCLIP resizes to 1024
    out = vfm.patch_features(x)
    ref = vfm.model.forward_features(torch.nn.functional.interpolate(x, size=(64, 64), mode='bilinear'))
    assert out.shape == (2, 16, 4, 4) and torch.allclose(out, ref, atol=1e-6)
