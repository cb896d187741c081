import pytest
import torch

from ovdense.models.backbones import OVCLIPViT, interpolate_pos_embed
from ovdense.models.methods import OVProxyCLIP, neighbourhood_bias, registered_methods
from ovdense.testing import random_images, tiny_method, tiny_vfm

METHODS = sorted(registered_methods())


@pytest.mark.parametrize('name', METHODS)
def test_methods_batch2_shapes_and_consistency(name):
    """Every registered method, on a CLIP deep enough for its layer indices: batch 2 == batch 1, non-square grid."""
    clip, method, text = tiny_method(name)
    bb = OVCLIPViT(clip, method, out_indices=(0, -1)).eval()
    x = random_images(2, 64, 96)
    with torch.no_grad():
        inter0, inter1, dense = bb(x, text=text)
        single = bb.dense_features(x[1:], text=text)
    grid = (8, 12) if isinstance(bb.method, OVProxyCLIP) else (4, 6)  # proxyclip: on the VFM's patch-8 grid
    assert dense.shape == (2, 32, *grid) and inter0.shape == (2, 64, 4, 6) and inter1.shape == (2, 64, *grid)
    assert torch.isfinite(dense).all()
    assert torch.allclose(dense[1:], single, atol=1e-5)  # batch-size-2 equals batch-size-1


def test_methods_differ():
    x = random_images(1, 64, 64)
    outs = {}
    with torch.no_grad():
        for name in METHODS:
            clip, method, text = tiny_method(name, layers=12)
            outs[name] = OVCLIPViT(clip, method).eval().dense_features(x, text=text)
    for a in METHODS:
        for b in METHODS:
            if a < b and outs[a].shape == outs[b].shape:
                assert not torch.allclose(outs[a], outs[b], atol=1e-4), (a, b)


def test_vanilla_matches_open_clip_patch_tokens(tiny_clip):
    x = random_images(2, 64, 64)
    bb = OVCLIPViT(tiny_clip)
    with torch.no_grad():
        tokens = bb.forward_tokens(x).tokens
        cls = tiny_clip.encode_image(x)
    assert torch.allclose(tokens[:, 0], cls, atol=1e-5)  # CLS through our blocks == open_clip's


def test_invalid_arguments_list_choices(tiny_clip):
    with pytest.raises(ValueError, match=r"unknown dense method 'OVGem'; registered: \[.*'OVNACLIP'"):
        OVCLIPViT(tiny_clip, dict(type='OVGem'))
    with pytest.raises(ValueError, match='position interpolation'):
        OVCLIPViT(tiny_clip, pos_interp='nearest')
    with pytest.raises(ValueError, match="this CLIP has 2 blocks"):
        OVCLIPViT(tiny_clip, out_indices=(3,))


def test_renamed_keywords_answered_with_the_new_form(tiny_clip):
    with pytest.raises(ValueError, match=r"replaced by method=dict\(type='OVNACLIP'"):
        OVCLIPViT(tiny_clip, mode='naclip', naclip_std=5.0)
    with pytest.raises(ValueError, match=r"replaced by method=dict\(type='OVSCLIP'"):
        OVCLIPViT(tiny_clip, 'sclip')
    with pytest.raises(ValueError, match=r"proxy_beta"):
        OVCLIPViT(tiny_clip, proxy=dict(), proxy_beta=1.2)


def test_pos_embed_native_is_identity(tiny_clip):
    pos = tiny_clip.vit_tower().positional_embedding
    for method in ('sclip', 'bicubic', 'bilinear'):
        assert interpolate_pos_embed(pos, (4, 4), method=method) is pos
        assert interpolate_pos_embed(pos, (3, 7), method=method).shape == (22, 64)


def test_neighbourhood_bias():
    om = neighbourhood_bias(3, 4, std=5.0)
    assert om.shape == (13, 13)
    assert om[0].abs().sum() == 0 and om[:, 0].abs().sum() == 0
    assert torch.allclose(om[1:, 1:].diagonal(), torch.ones(12))
    assert torch.allclose(om[1, 2], torch.exp(torch.tensor(-1 / 50.)))


def test_corner_padding_grid(tiny_clip):
    x = random_images(1, 70, 90)
    assert OVCLIPViT(tiny_clip, patch_padding='drop').dense_features(x).shape[-2:] == (4, 5)
    assert OVCLIPViT(tiny_clip, patch_padding='corner').dense_features(x).shape[-2:] == (5, 6)


def test_frozen(tiny_clip):
    bb = OVCLIPViT(tiny_clip).train()
    assert not any(p.requires_grad for p in bb.parameters())
    assert not bb.clip.training


def test_proxyclip_statistics_per_window_unless_reference_quirks(tiny_clip):
    """ProxyCLIP's batch-wide similarity mean couples the windows of a batch; ours is per window."""
    x = random_images(2, 64, 64, seed=3)
    with torch.no_grad():
        ours = OVCLIPViT(tiny_clip, dict(type='OVProxyCLIP', proxy=tiny_vfm())).eval()
        quirk = OVCLIPViT(tiny_clip, dict(type='OVProxyCLIP', proxy=tiny_vfm(), reference_quirks=True)).eval()
        alone = torch.cat([ours.dense_features(x[i:i + 1]) for i in range(2)])
        assert torch.allclose(ours.dense_features(x), alone, atol=1e-5)
        assert torch.allclose(torch.cat([quirk.dense_features(x[i:i + 1]) for i in range(2)]), alone, atol=1e-5)
        assert not torch.allclose(quirk.dense_features(x), alone, atol=1e-3)  # coupled, as the reference


def test_proxyclip_non_square_grid(tiny_clip):
    """A 64x96 window: the VFM's 8x12 grid (the reference reads 8x8 from the height and scrambles)."""
    x = random_images(1, 64, 96, seed=4)
    with torch.no_grad():
        ours = OVCLIPViT(tiny_clip, dict(type='OVProxyCLIP', proxy=tiny_vfm())).eval()
        out = ours.dense_features(x)
        assert out.shape[-2:] == (8, 12)
        # columns are where they belong: the left 64x64 of the window sees the same left content
        quirk = OVCLIPViT(tiny_clip, dict(type='OVProxyCLIP', proxy=tiny_vfm(), reference_quirks=True)).eval().dense_features(x)
        assert quirk.shape[-2:] == (8, 8)
    with pytest.raises(TypeError, match='proxy'):
        OVCLIPViT(tiny_clip, dict(type='OVProxyCLIP'))
    with pytest.raises(ValueError, match="needs proxy=dict"):
        OVCLIPViT(tiny_clip, dict(type='OVProxyCLIP', proxy=None))


def test_proxyclip_with_the_clip_as_its_own_proxy(tiny_clip):
    x = random_images(2, 64, 96, seed=5)
    bb = OVCLIPViT(tiny_clip, dict(type='OVProxyCLIP', proxy='self')).eval()
    with torch.no_grad():
        out = bb.dense_features(x)
        tokens, grid = bb.embed(x)
        for blk in bb.tower.blocks[:-1]:
            tokens = bb.block(blk, tokens)
        feats = tokens[:, 1:].transpose(1, 2).reshape(2, -1, *grid)
        last, _ = bb.method.proxy_block(bb, bb.tower.blocks[-1], tokens, grid, feats)
    assert out.shape == (2, 32, 4, 6)  # the CLIP's own grid
    ref = (bb.ln(bb.tower.ln_post, last) @ bb.tower.proj).transpose(1, 2).reshape(2, -1, 4, 6)
    assert torch.allclose(out, ref, atol=1e-5)
