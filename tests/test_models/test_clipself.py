"""CLIPSelf: golden parity, region features, loss/gradients, export, region classification."""
import pytest
import torch
import torch.nn.functional as F

from ovdense.clip import build_clip
from ovdense.evaluation.region import OVRegionClsMetric, per_class_topk
from ovdense.models.pretrainers.clipself import OVCLIPSelf, box_masks, mask_features, roi_features
from ovdense.testing.parity import run_case
from ovdense.testing import TINY_CLIP_CFG, golden_dir

from ..conftest import requires_shared


@requires_shared
def test_golden_clipself_case():
    checks = run_case(golden_dir() / 'clipself' / 'case_a.pt')
    names = {c.name for c in checks}
    assert {'input', 'teacher_crops', 'dense_feature_map', 'roi_features_v2_roialign', 'roi_features_v1_maskattn',
            'mask_pooled_features', 'mask_attn_pooled_features', 'teacher_crop_features', 'loss_cosine'} <= names
    bad = [(c.name, c.diff) for c in checks if not c.ok]
    assert not bad, bad


@pytest.fixture()
def model(tmp_path):
    torch.manual_seed(0)
    cfg_path, weights = build_clip(model_cfg=TINY_CLIP_CFG).save(tmp_path, 'tiny')
    m = OVCLIPSelf(dict(config_file=str(cfg_path), checkpoint=str(weights)), text_encoder=dict(vocabulary=['a', 'b', 'c'],
                                                                                        templates=['{}']))
    m.init_weights()
    return m


def _batch(n_boxes=(3, 2), size=128, crop=64):
    g = torch.Generator().manual_seed(0)
    images = torch.randn(len(n_boxes), 3, size, size, generator=g)
    samples = []
    for n in n_boxes:
        xy = torch.rand(n, 2, generator=g) * 0.5
        wh = 0.2 + torch.rand(n, 2, generator=g) * 0.3
        samples.append(dict(boxes=torch.cat([xy, xy + wh], 1), crops=torch.randn(n, 3, crop, crop, generator=g)))
    return images, samples


def test_teacher_starts_equal_to_student_and_stays_frozen(model):
    s, t = model.student.clip.model.state_dict(), model.teacher.model.state_dict()
    assert all(torch.equal(s[k], t[k]) for k in s)
    images, samples = _batch()
    out = model(list(images), samples, mode='loss')  # batch of 2 images, 5 regions
    out['loss_cosine'].backward()
    assert torch.allclose(out['loss_cosine'], out['cos_dissim'])
    assert all(p.grad is None for p in model.teacher.parameters())
    assert all(p.grad is None for p in model.student.clip.text_parameters())
    assert model.student.tower.conv1.weight.grad.abs().sum() > 0
    assert model.student.tower.proj.grad.abs().sum() > 0


def test_loss_is_one_minus_cosine(model):
    images, samples = _batch((2,))
    with torch.no_grad():
        dense = model.student.dense_features(images, normalize=True)
        student = F.normalize(roi_features(dense, [samples[0]['boxes']]), dim=-1)
        teacher = F.normalize(model.teacher.encode_image(samples[0]['crops']), dim=-1)
        loss = model(images, samples, mode='loss')['loss_cosine']
    assert torch.allclose(loss, 1 - (student * teacher).sum(-1).mean(), atol=1e-6)


@pytest.mark.parametrize('pool', ['roi_align', 'mask', 'mask_attn'])
def test_region_pools(model, pool):
    model.region_pool = pool
    images, samples = _batch()
    feats = model.region_features(images, None, [s['boxes'] for s in samples])
    assert feats.shape == (5, TINY_CLIP_CFG['embed_dim']) and torch.isfinite(feats).all()


def test_box_masks_and_mask_pooling():
    m = box_masks(torch.tensor([[0.0, 0.0, 0.5, 0.25], [0.5, 0.5, 0.6, 0.55]]), 8, 8)
    assert m[0].sum() == 8 and m[0, :2, :4].all()
    assert m[1].sum() == 0  # thinner than a cell: empty, as the reference
    dense = F.normalize(torch.randn(1, 4, 8, 8), dim=1)
    f = mask_features(dense, [m[:1]])
    assert torch.allclose(f[0], F.normalize(dense[0, :, :2, :4].mean((1, 2)), dim=0), atol=1e-6)


def test_train_blocks_freezes_earlier_blocks(tmp_path):
    cfg_path, weights = build_clip(model_cfg=TINY_CLIP_CFG).save(tmp_path, 'tiny')
    m = OVCLIPSelf(dict(config_file=str(cfg_path), checkpoint=str(weights)), train_blocks=1)
    blocks = m.student.tower.blocks
    assert not any(p.requires_grad for p in blocks[0].fc1.parameters())
    assert all(p.requires_grad for p in blocks[-1].fc1.parameters())
    assert not m.student.tower.conv1.weight.requires_grad and m.student.tower.proj.requires_grad
    named = list(m.student.clip.model.named_parameters())
    want = {n for n, _ in named if n.startswith(('visual.transformer.resblocks.1.', 'visual.ln_post.')) or n == 'visual.proj'}
    assert {n for n, p in named if p.requires_grad} == want  # the last block, ln_post, proj; no text
    every = OVCLIPSelf(dict(config_file=str(cfg_path), checkpoint=str(weights)))
    assert {n for n, p in every.student.clip.model.named_parameters() if p.requires_grad} == {
        n for n, _ in named if n.startswith('visual.')}
    with pytest.raises(ValueError, match='train_blocks must be in 1..2'):
        OVCLIPSelf(dict(config_file=str(cfg_path)), train_blocks=5)
    with pytest.raises(ValueError, match="valid: \\['roi_align', 'mask', 'mask_attn'\\]"):
        OVCLIPSelf(dict(config_file=str(cfg_path)), region_pool='box')


def test_export_is_the_weight_space_ensemble(model, tmp_path):
    with torch.no_grad():
        for p in model.student.clip.visual.parameters():
            p.add_(1.0)
    cfg_path, weights = model.export(tmp_path / 'out', 'ens')
    clip = build_clip(config_file=cfg_path, checkpoint=weights)
    clip.load_weights()
    s, t, e = (x.state_dict() for x in (model.student.clip.model, model.teacher.model, clip.model))
    k = 'visual.conv1.weight'
    assert torch.allclose(e[k], 0.7 * s[k] + 0.3 * t[k], atol=1e-6)
    assert torch.allclose(e[k], t[k] + 0.7, atol=1e-5)


def test_predict_and_region_metric(model):
    images, samples = _batch()
    for s, labels in zip(samples, ([0, 1, 2], [2, 0])):
        s.update(img_id=0, labels=torch.tensor(labels), masks=box_masks(s['boxes'], 8, 8))
    out = model(images, samples, mode='predict')
    assert [o['scores_roi'].shape for o in out] == [(3, 3), (2, 3)]
    metric = OVRegionClsMetric()
    metric.dataset_meta = dict(classes=('a', 'b', 'c'), splits=('base', 'base', 'novel'))
    metric.process({}, out)
    res = metric.compute_metrics(metric.results)
    assert {'roi_top1', 'mask_top1', 'crop_top1', 'roi_top1_novel', 'crop_top5_base'} <= set(res)
    assert res['roi_top5'] == 100.0  # 3 classes: top-5 always hits


def test_per_class_topk_oracle():
    labels = torch.tensor([0, 0, 1, 2, 2, 2])
    assert per_class_topk(F.one_hot(labels, 3).float(), labels, 1) == 100.0
    wrong = F.one_hot((labels + 1) % 3, 3).float()
    assert per_class_topk(wrong, labels, 1) == 0.0
    half = F.one_hot(torch.tensor([0, 1, 1, 2, 2, 2]), 3).float()  # class 0: 1 of 2 right
    assert per_class_topk(half, labels, 1) == pytest.approx(100 * (0.5 + 1 + 1) / 3)
    assert per_class_topk(half, labels, 1, classes=[0]) == pytest.approx(50.0)


def test_losses_are_components_summed_with_their_weights(model, tmp_path):
    """A second loss of a test's own (registered here, not in ovdense) is summed next to CLIPSelf's, each weighted."""
    from mmseg.registry import MODELS

    from ovdense.models.losses import OVDistillLoss

    @MODELS.register_module(force=True)
    class MeanDenseNorm(OVDistillLoss):  # a toy context term: the mean norm of the raw dense map
        name, log_name = 'norm', 'dense_norm'

        def forward(self, batch):
            dense = batch.student.dense_features(batch.images)
            return dense.norm(dim=1).sum(), torch.tensor(float(dense[:, 0].numel()))

    images, samples = _batch()
    base = model(images, samples, mode='loss')
    cfg = model.clip_cfg
    two = OVCLIPSelf(cfg, losses=[dict(type='OVRegionCosineLoss', weight=0.5), dict(type='MeanDenseNorm', weight=2.0)])
    two.init_weights()
    out = two(images, samples, mode='loss')
    assert torch.allclose(out['loss_cosine'], 0.5 * base['loss_cosine']) and torch.allclose(out['cos_dissim'],
                                                                                              base['cos_dissim'])
    dense = two.student.dense_features(images)
    assert torch.allclose(out['loss_norm'], 2.0 * dense.norm(dim=1).mean()) and 'dense_norm' in out
    with pytest.raises(ValueError, match=r"registered: \[.*'OVRegionCosineLoss'"):
        OVCLIPSelf(cfg, losses=[dict(type='OVNoSuchLoss')])
    with pytest.raises(ValueError, match='each of another kind'):
        OVCLIPSelf(cfg, losses=[dict(type='OVRegionCosineLoss'), dict(type='OVRegionCosineLoss')])
