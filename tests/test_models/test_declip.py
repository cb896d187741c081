"""DeCLIP: golden parity, the decoupled method, the context loss at batch 2 / non-square grids, the pretrainer wiring."""
import pytest
import torch
import torch.nn.functional as F

from ovdense.clip import build_clip
from ovdense.models.backbones import OVCLIPViT
from ovdense.models.losses import OVContextLoss, student_similarity, vfm_similarity
from ovdense.models.methods import OVDeCLIP
from ovdense.models.methods.declip import decoupled_attention
from ovdense.models.pretrainers.clipself import OVCLIPSelf
from ovdense.testing import TINY_CLIP_CFG, TINY_EVA_CFG, golden_dir
from ovdense.testing.parity import run_case

from ..conftest import requires_shared

TINY_DINOV2 = dict(model_name='vit_base_patch14_reg4_dinov2', pretrained=False,
                   model_kwargs=dict(embed_dim=32, depth=1, num_heads=2, img_size=56))


@requires_shared
def test_golden_declip_case():
    checks = run_case(golden_dir() / 'declip' / 'case_a.pt')
    names = {c.name for c in checks}
    assert {'input', 'proxy_input', 'teacher_crops', 'student_last_block_output', 'student_context', 'dense_map',
            'roi_features', 'vfm_pos_embed', 'vfm_patch_features', 'vfm_similarity', 'student_similarity',
            'loss_context', 'loss_content', 'loss_total', 'grad/visual.blocks.3.attn.q_proj.weight',
            'grads_none_mismatches', 'trainable_params_mismatches', 'no_weight_decay_mismatches',
            'mode/csa/loss_context_batch2', 'mode/maskclip/dense_map', 'protocol_knobs'} <= names
    bad = [(c.name, c.diff) for c in checks if not c.ok]
    assert not bad, bad


def test_attentions_and_their_rule():
    g = torch.Generator().manual_seed(0)
    parts = {c: torch.randn(2, 3, 7, 4, generator=g) for c in 'qkv'}
    csa = decoupled_attention(parts, 'csa')
    assert torch.allclose(csa.sum(-1), torch.full((2, 3, 7), 2.0))  # two softmaxes summed, as the reference
    q = parts['q']
    assert torch.allclose(decoupled_attention(parts, 'qq'), torch.softmax(q @ q.transpose(-2, -1), -1))  # no scale
    with pytest.raises(ValueError, match=r"valid: \['qq', 'kk', 'vv', 'csa', 'all'\]"):
        OVDeCLIP(attention='qk')


@pytest.mark.parametrize('cfg', [TINY_CLIP_CFG, TINY_EVA_CFG], ids=['openai', 'eva02'])
def test_method_gives_context_and_freezes_what_it_does_not_use(cfg):
    torch.manual_seed(0)
    vit = OVCLIPViT(build_clip(model_cfg=cfg), dict(type='OVDeCLIP', attention='qq'), frozen=False)
    x = torch.randn(2, 3, 64, 96)  # batch 2, non-square
    out = vit.forward_tokens(x)
    h, w = out.grid
    (q,) = out.extras['context']
    assert q.shape == (2, vit.tower.num_heads, h * w, vit.tower.width // vit.tower.num_heads)
    # each image alone gives the same
    alone = vit.forward_tokens(x[1:]).tokens
    assert torch.allclose(out.tokens[1:], alone, atol=1e-5)
    unused = {id(p) for p in vit.method.unused_parameters(vit)}
    blk = vit.tower.blocks[-1]
    assert {id(p) for p in blk.ln_2.parameters()} <= unused and {id(p) for p in blk.fc2.parameters()} <= unused
    if hasattr(blk, 'k_proj'):  # EVA-02 keeps k apart: unused by q-q attention (the reference's freeze list)
        assert id(blk.k_proj.weight) in unused and id(blk.q_proj.weight) not in unused
    out.tokens.sum().backward()
    assert all(p.grad is None for p in vit.method.unused_parameters(vit))


def test_student_similarity_rules_and_resize():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 3, 12, 4, generator=g), torch.randn(2, 3, 12, 4, generator=g)
    s = student_similarity((q,), (3, 4), (3, 4))
    cat = F.normalize(q.transpose(1, 2).reshape(2, 12, 12), dim=-1)
    assert torch.allclose(s, cat @ cat.transpose(1, 2))  # heads concatenated, one similarity per image
    per_head = student_similarity((q, k), (3, 4), (3, 4))
    assert per_head.shape == (2, 3, 12, 12)  # csa / all: per head
    resized = student_similarity((q,), (3, 4), (6, 8))  # a VFM grid other than the student's
    assert resized.shape == (2, 48, 48) and torch.allclose(resized.diagonal(dim1=1, dim2=2), torch.ones(2, 48))
    feats = torch.randn(2, 5, 3, 4, generator=g)
    assert torch.allclose(vfm_similarity(feats).diagonal(dim1=1, dim2=2), torch.ones(2, 12))


def _declip(tmp_path, cfg=TINY_CLIP_CFG, *, attention='qq', quirks=False):
    torch.manual_seed(0)
    cfg_path, weights = build_clip(model_cfg=cfg).save(tmp_path, 'tiny')
    m = OVCLIPSelf(dict(config_file=str(cfg_path), checkpoint=str(weights)), dict(type='OVDeCLIP', attention=attention),
                   normalize_dense=False, text_encoder=dict(vocabulary=['a', 'b'], templates=['{}']),
                   losses=[dict(type='OVRegionCosineLoss', weight=1.0),
                           dict(type='OVContextLoss', weight=0.1, vfm=TINY_DINOV2, reference_quirks=quirks)])
    m.init_weights()
    return m


def _samples(n, size=(64, 96), crop=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n, 3, *size, generator=g)
    samples = [dict(boxes=torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.25, 0.25, 1.0, 0.75]]),
                    crops=torch.randn(2, 3, crop, crop, generator=g)) for _ in range(n)]
    return images, samples


@pytest.mark.parametrize('attention', ['qq', 'csa'])
def test_batch_of_two_is_the_mean_of_its_images(tmp_path, attention):
    """The reference's csa / all fail at batch 2; here a batch gives the mean of its images' losses (equal box
    counts), on a non-square input whose VFM input is derived from the student's."""
    model = _declip(tmp_path, attention=attention)
    images, samples = _samples(2)
    both = model(images, samples, mode='loss')
    one = [model(images[i:i + 1], samples[i:i + 1], mode='loss') for i in range(2)]
    for key in ('loss_context', 'loss_cosine'):
        assert torch.allclose(both[key], (one[0][key] + one[1][key]) / 2, atol=1e-6), key
    assert torch.allclose(both['loss_context'], 0.1 * both['context_dist'])
    (both['loss_context'] + both['loss_cosine']).backward()
    blk = model.student.tower.blocks[-1]
    assert blk.attn.in_proj_weight.grad.abs().sum() > 0
    assert not blk.fc1.weight.requires_grad and blk.fc1.weight.grad is None  # the unused FFN is frozen
    assert all(p.grad is None for p in model.losses[1].vfm.parameters())


def test_vfm_input_follows_the_student_and_quirks_read_the_dataset(tmp_path):
    model = _declip(tmp_path)
    images, samples = _samples(1)
    loss = model.losses[1]
    out = model.student.forward_tokens(images)
    from ovdense.models.losses import DistillBatch
    batch = DistillBatch(images=images, boxes=[], crops=images[:0], student=model.student, teacher=model.teacher,
                         region_features=lambda b: None, samples=samples)
    x = loss.vfm_input(batch, out.grid)
    assert x.shape == (1, 3, out.grid[0] * 14, out.grid[1] * 14)
    quirky = _declip(tmp_path, quirks=True)
    with pytest.raises(ValueError, match="'proxy' image: set the dataset's proxy_size"):
        quirky(images, samples, mode='loss')
    samples[0]['proxy'] = torch.zeros(3, out.grid[0] * 14, out.grid[1] * 14)
    assert torch.isfinite(quirky(images, samples, mode='loss')['loss_context'])


def test_context_loss_needs_a_method_with_context(tmp_path):
    torch.manual_seed(0)
    cfg_path, weights = build_clip(model_cfg=TINY_CLIP_CFG).save(tmp_path, 'tiny')
    m = OVCLIPSelf(dict(config_file=str(cfg_path), checkpoint=str(weights)), dict(type='OVMaskCLIP'),
                   losses=[dict(type='OVRegionCosineLoss'), dict(type='OVContextLoss', vfm=TINY_DINOV2)])
    m.init_weights()
    images, samples = _samples(1)
    with pytest.raises(ValueError, match="OVMaskCLIP gives none .use method=dict.type='OVDeCLIP'"):
        m(images, samples, mode='loss')
    with pytest.raises(ValueError, match='OVContextLoss needs vfm='):
        OVContextLoss(None)


def test_eva_lock_trains_blocks_only(tmp_path):
    torch.manual_seed(0)
    cfg_path, weights = build_clip(model_cfg=TINY_EVA_CFG).save(tmp_path, 'tiny', weights_format='eva_clip')
    m = OVCLIPSelf(dict(config_file=str(cfg_path), checkpoint=str(weights)), dict(type='OVDeCLIP'), train_blocks=2,
                   train_head=False, losses=[dict(type='OVRegionCosineLoss')])
    t, trunk = m.student.tower, m.student.clip.model.visual.trunk
    assert not any(p.requires_grad for p in [t.conv1.weight, trunk.pos_embed, trunk.cls_token, *t.ln_post.parameters(),
                                             *t.head.parameters()])
    assert t.blocks[0].q_proj.weight.requires_grad and not t.blocks[-1].k_proj.weight.requires_grad
    m2 = OVCLIPSelf(dict(config_file=str(cfg_path), checkpoint=str(weights)), train_blocks=2,
                    losses=[dict(type='OVRegionCosineLoss')])
    assert m2.student.tower.head.weight.requires_grad  # open_clip's groups: the projection with the last block


def test_dataset_gives_the_reference_vfm_input(tmp_path):
    from ovdense.datasets.clipself import OVCLIPSelfDataset
    from ovdense.datasets.synthetic import WorldConfig, export
    export(tmp_path, split='train', num_images=2, seed=5, cfg=WorldConfig(size=64), progress=False)
    ds = OVCLIPSelfDataset(str(tmp_path / 'train/instances.json'), str(tmp_path / 'train/images'), input_size=80,
                           crop_size=32, proxy_size=70)
    s = ds[0]['data_samples']
    assert ds[0]['inputs'].shape == (3, 80, 80) and s.proxy.shape == (3, 70, 70)
    assert 'proxy' not in OVCLIPSelfDataset(str(tmp_path / 'train/instances.json'), str(tmp_path / 'train/images'),
                                            input_size=80, crop_size=32)[0]['data_samples']
