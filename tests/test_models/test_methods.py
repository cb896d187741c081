"""Dense methods as components: the registry, a user's own method from a config, and SC-CLIP's / ResCLIP's pieces
against independent recipes (the golden cases are in test_parity)."""
from pathlib import Path

import numpy as np
import pytest
import torch

from ovdense.apis import inference_model, init_model
from ovdense.models.methods import registered_methods
from ovdense.models.methods.resclip import OVResCLIP, feedback_matrix, patch_vote, valid_paths
from ovdense.models.methods.scclip import local_outlier_factor, repair
from ovdense.testing import random_images, tiny_method

REPO = Path(__file__).resolve().parents[2]


def test_every_shipped_method_is_registered():
    assert {'vanilla', 'maskclip', 'sclip', 'clearclip', 'naclip', 'proxyclip', 'scclip', 'resclip'} <= set(
        registered_methods())


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


def test_standard_lof_is_scikit_learns_and_the_reference_one_differs():
    from sklearn.neighbors import LocalOutlierFactor
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(2, 60, 8, generator=g), 6 * torch.randn(2, 4, 8, generator=g)], 1)  # 4 far points
    ours = local_outlier_factor(x, 10)
    for b in range(2):
        ref = -LocalOutlierFactor(n_neighbors=10).fit(x[b].double().numpy()).negative_outlier_factor_
        assert np.allclose(ours[b].numpy(), ref, atol=1e-4)
    quirk = local_outlier_factor(x, 10, reference_quirks=True)
    assert not torch.allclose(quirk, ours, atol=1e-2)
    # the reference's: squared distances, the point's own k-distance (LRD = k / kd)
    d = torch.cdist(x, x) ** 2
    knn_d, knn_i = d.topk(11, largest=False)
    lrd = 10 / knn_d[..., -1]
    expected = (torch.gather(lrd, 1, knn_i[..., 1:].flatten(1)).view(2, 64, 10) / lrd[..., None]).mean(-1)
    assert torch.allclose(quirk, expected, rtol=1e-4)


def test_repair_takes_the_mean_of_valid_neighbours_only():
    maps = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).view(2, 3, 4, 5)
    out = torch.zeros(2, 4, 5, dtype=torch.bool)
    out[0, 0, 0] = out[0, 0, 1] = True  # a corner outlier next to another outlier
    out[1, 2, 2] = True
    got = repair(maps, out)
    # (0, 0): its valid neighbours are (1, 0), (1, 1) (the outlier (0, 1) is skipped)
    assert torch.allclose(got[0, :, 0, 0], (maps[0, :, 1, 0] + maps[0, :, 1, 1]) / 2)
    nb = [(1, 1), (1, 2), (1, 3), (2, 1), (2, 3), (3, 1), (3, 2), (3, 3)]
    assert torch.allclose(got[1, :, 2, 2], torch.stack([maps[1, :, r, c] for r, c in nb]).mean(0))
    keep = ~out[:, None].expand_as(maps)
    assert torch.equal(got[keep], maps[keep])  # everything else untouched, per image


def test_path_check_reads_the_whole_path_unless_reference_quirks():
    """A row of 10 patches with one patch of another label at column 4: the path 0 -> 5 crosses it. The reference
    samples every path at T + 1 = 10 points and reads the first steps + 1 = 6 of them (columns 0..3): valid."""
    labels = torch.zeros(1, 10, dtype=torch.long)
    labels[0, 4] = 1
    ours, ref = valid_paths(labels), valid_paths(labels, reference_quirks=True)
    assert not ours[0, 5] and ref[0, 5]
    assert not ours[0, 9] and not ref[0, 9] and ours[0, 3] and ours[5, 9]
    # every pair, independently: a path is valid iff no rounded point on it (one per step) has another label
    for p in range(10):
        for q in range(10):
            steps = abs(p - q)
            pts = [round(p + (q - p) * s / steps) if steps else p for s in range(steps + 1)]
            assert bool(ours[p, q]) == all(labels[0, c] == labels[0, p] for c in pts), (p, q)


def test_feedback_blur_stays_on_its_grid_row_unless_reference_quirks():
    labels = torch.tensor([[0, 0, 0, 1], [2, 2, 2, 2]])  # patch 3 (end of grid row 0) is alone with label 1
    ours = feedback_matrix(labels, std=1.0, delete_same_entity=False)
    ref = feedback_matrix(labels, std=1.0, delete_same_entity=False, reference_quirks=True)
    assert ours[3, 4:].abs().max() == 0 and ref[3, 4] > 0  # the flattened blur crosses into grid row 1
    assert torch.allclose(ours.sum(1), torch.ones(8), atol=1e-6)


def test_patch_vote_ties_go_to_the_smallest_label():
    labels = torch.zeros(1, 4, 4, dtype=torch.long)
    labels[0, :2, :2] = torch.tensor([[3, 3], [1, 1]])  # patch (0, 0): 3 and 1 twice each
    labels[0, 2:, 2:] = 2
    assert patch_vote(labels, (2, 2), 2, 4).tolist() == [[[1, 0], [0, 2]]]


def test_resclip_first_pass_in_chunks_equals_one_chunk():
    clip, cfg, text = tiny_method('resclip', num_queries=7)
    one = OVResCLIP(**{k: v for k, v in cfg.items() if k != 'type'}, chunk_queries=100)
    chunked = OVResCLIP(**{k: v for k, v in cfg.items() if k != 'type'}, chunk_queries=2)
    x = random_images(2, 64, 96)
    logits = torch.randn(2, 7, 4, 6)
    (p1, a1), (p2, a2) = one.temp_pixels(x, logits), chunked.temp_pixels(x, logits)
    assert torch.equal(a1, a2) and torch.allclose(p1, p2, atol=1e-6)
    full = torch.softmax(40 * one.pamr.refine(torch.nn.functional.interpolate(logits, size=(64, 96), mode='bilinear'),
                                              one.pamr.affinity(x)), 1)
    assert torch.equal(full.argmax(1), a1) and torch.allclose(full.amax(1), p1, atol=1e-6)


def test_resclip_float16_prior_only_with_reference_quirks():
    kk = torch.randn(1, 2, 5, 5)
    sfr = torch.rand(1, 1, 5, 5) / 3
    ours, ref = OVResCLIP().attention_logits(kk, 0, sfr), OVResCLIP(reference_quirks=True).attention_logits(kk, 0, sfr)
    assert ours.dtype == ref.dtype == torch.float32
    tau, lam = 2.2, 0.7
    assert torch.allclose(ours, tau * ((1 - lam) * kk + lam * sfr), atol=1e-6)
    assert torch.equal(ref, tau * ((1 - lam) * kk + (lam * sfr.half()).float()))
    assert 0 < (ours - ref).abs().max() < 1e-3


def test_method_knobs_are_checked_against_the_clip():
    clip, _, _ = tiny_method('scclip')  # 4 blocks
    from ovdense.models import OVCLIPViT
    with pytest.raises(ValueError, match='set the indices for this model'):
        OVCLIPViT(clip, dict(type='OVSCCLIP'))  # the reference's 12-block indices
    with pytest.raises(ValueError, match='rcs_blocks'):
        OVCLIPViT(clip, dict(type='OVResCLIP'))
    with pytest.raises(ValueError, match='use_rcs must be True or False'):
        OVResCLIP(use_rcs=(False,))
    with pytest.raises(ValueError, match='needs the vocabulary'):
        OVCLIPViT(clip, dict(type='OVResCLIP', rcs_blocks=(1,))).dense_features(random_images(1, 64, 64))
