"""CAT-Seg: golden parity, batch 2, non-square images, the vocabulary per call, more classes than the class padding,
what trains (q / v rows only) and the reference checkpoint's names."""
import pytest
import torch
from mmengine.optim import build_optim_wrapper
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

import ovdense.models  # noqa: F401
from ovdense.models.segmentors.catseg import from_reference_state_dict
from ovdense.testing import TINY_CLIP_CFG, golden_dir
from ovdense.testing.parity import run_case

from ..conftest import requires_shared


@requires_shared
def test_golden_catseg_case():
    checks = run_case(golden_dir() / 'catseg' / 'case_a.pt')
    names = {c.name for c in checks}
    assert {'clip_dense_features', 'guidance_layer_tokens', 'text_embeddings', 'corr', 'layer1_class_global',
            'decoder1_global', 'window_logits_probe', 'sem_seg', 'pred_label_mismatches', 'whole_sem_seg_probe',
            'big_selected_classes_mismatches', 'big_logits_min', 'big_pred_label_mismatches', 'train_loss',
            'train_trainable_mismatches', 'train_grad_total_norm_rel', 'train_lrs'} <= names
    bad = [(c.name, c.diff) for c in checks if not c.ok]
    assert not bad, bad


def _model(*, classes=('sky', 'road', 'car'), pad_len=256, mode='slide', unseen=(), **text):
    from mmengine.registry import init_default_scope
    init_default_scope('mmseg')
    torch.manual_seed(0)
    cfg = dict(
        type='OVCATSeg', data_preprocessor=dict(type='SegDataPreProcessor', mean=[122.8, 116.7, 104.1],
                                                std=[68.5, 66.6, 70.3], bgr_to_rgb=True, size=(96, 96)),
        backbone=dict(type='OVCLIPViT', clip=dict(model_cfg=TINY_CLIP_CFG), method=dict(type='OVMaskCLIP'),
                      out_indices=(0, 1), pos_interp='bicubic', frozen=False),
        decode_head=dict(type='OVCATSegHead', width=64, embed_dim=32, text_guidance_proj_dim=8,
                         appearance_guidance_proj_dim=8, decoder_dims=(32, 16), decoder_guidance_dims=(16, 16),
                         decoder_guidance_proj_dims=(8, 4), num_layers=1, num_heads=2, hidden_dim=16,
                         feature_resolution=(6, 6), window_size=3, pad_len=pad_len),
        text_encoder=dict(type='OVTextEncoder', vocabulary=list(classes), templates=['a photo of a {}.'],
                          **dict(dict(synonyms='first', trainable=True), **text)),
        clip_resolution=96, slide_size=160, slide_window=96, unseen=unseen, test_cfg=dict(mode=mode))
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def _sample(h, w, classes=3, vocabulary=None):
    g = torch.Generator().manual_seed(h * w)
    label = torch.randint(0, classes, (1, h, w), generator=g)
    label[:, :2] = 255
    meta = dict(img_shape=(h, w), ori_shape=(h, w))
    if vocabulary is not None:
        meta['vocabulary'] = vocabulary
    return SegDataSample(gt_sem_seg=PixelData(data=label), metainfo=meta)


def test_training_step_batch_two_trains_q_and_v_only():
    model = _model()
    model.train()
    x = torch.randn(2, 3, 96, 96)
    loss = model.loss(x, [_sample(96, 96), _sample(96, 96)])['loss_sem_seg']
    assert torch.isfinite(loss)
    wrapper = build_optim_wrapper(model, dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-2, weight_decay=1e-2),
                                              paramwise_cfg=dict(custom_keys={'in_proj_weight': dict(decay_mult=0.0)})))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    wrapper.update_params(loss)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    clip = {n for n in changed if n.startswith('backbone.clip.')}
    assert clip and all(n.endswith('attn.in_proj_weight') for n in clip)  # both towers' packed q/k/v weights
    assert any('visual' in n for n in clip) and any('visual' not in n for n in clip)
    moved = []
    for n in clip:  # the k rows never move; q rows do (but the last visual block's: its q is unused, zero gradient)
        w = model.get_parameter(n).detach().view(3, -1, model.get_parameter(n).shape[-1])
        old = before[n].view_as(w)
        assert torch.equal(w[1], old[1])
        moved.append((not torch.equal(w[0], old[0]), not torch.equal(w[2], old[2])))
    assert sum(q for q, _ in moved) == len(clip) - 1 and all(v for _, v in moved)
    assert any(n.startswith('decode_head.transformer.') for n in changed)


def test_ignored_pixels_are_left_out_unless_quirks():
    model = _model()
    model.train()
    x = torch.randn(1, 3, 96, 96)
    s = _sample(96, 96)
    a = model.loss(x, [s])['loss_sem_seg']
    model.reference_quirks = True
    b = model.loss(x, [s])['loss_sem_seg']
    assert not torch.allclose(a, b)


@pytest.mark.parametrize('mode', ['slide', 'whole'])
def test_inference_non_square_batch_and_vocabulary_per_call(mode):
    model = _model(mode=mode)
    model.eval()
    x = torch.randn(2, 3, 70, 110)  # batch 2, non-square
    out = model.predict(x, [_sample(70, 110), _sample(70, 110)])
    assert out[0].seg_logits.data.shape == (3, 70, 110) and out[1].pred_sem_seg.data.shape == (1, 70, 110)
    probs = out[0].seg_logits.data
    assert 0 < probs.min() and probs.max() < 1  # sigmoid probabilities
    alone = model.predict(x[1:], [_sample(70, 110)])[0].seg_logits.data
    assert torch.allclose(out[1].seg_logits.data, alone, atol=1e-5)
    five = model.predict(x[:1], [_sample(70, 110, vocabulary=['sky', 'road', 'car', 'tree', 'person'])])
    assert five[0].seg_logits.data.shape == (5, 70, 110)
    assert model.vocabulary.names == ['sky', 'road', 'car']  # nothing of the model changed


def test_crop_batch_bounds_memory_with_the_same_result():
    model = _model(classes=[f'class {i}' for i in range(9)], pad_len=4)
    model.eval()
    x = torch.randn(1, 3, 70, 110)
    a = model.predict(x, [_sample(70, 110)])[0].seg_logits.data
    model.crop_batch, model.class_chunk = 1, 2
    b = model.predict(x, [_sample(70, 110)])[0].seg_logits.data
    assert torch.allclose(a, b, atol=1e-6)


def test_more_classes_than_the_class_padding_keep_the_best():
    names = [f'class {i}' for i in range(7)]
    model = _model(classes=names, pad_len=4, mode='whole')
    model.eval()
    seen = {}
    model.decode_head.register_forward_hook(lambda m, i, o: seen.update(logits=o))
    model.predict(torch.randn(1, 3, 96, 96), [_sample(96, 96)])
    logits = seen['logits'][0]
    dropped = (logits == -100).flatten(1).all(1)
    assert int(dropped.sum()) == 3 and not (logits[~dropped] == -100).any()


def test_unseen_classes_are_left_out_of_training():
    model = _model(unseen=('car',))
    model.train()
    seen = {}
    model.decode_head.register_forward_hook(lambda m, i, o: seen.update(logits=o))
    model.loss(torch.randn(1, 3, 96, 96), [_sample(96, 96)])
    assert seen['logits'].shape[1] == 2
    with pytest.raises(ValueError, match=r"unseen classes \['boat'\] are not in the vocabulary"):
        _model(unseen=('boat',))


def test_reference_checkpoint_names():
    state = {'sem_seg_head.predictor.transformer.conv1.weight': torch.zeros(1),
             'upsample1.weight': torch.zeros(1),
             'sem_seg_head.predictor.clip_model.visual.transformer.resblocks.0.attn.q_proj_weight': torch.zeros(2, 4),
             'sem_seg_head.predictor.clip_model.visual.transformer.resblocks.0.attn.k_proj_weight': torch.ones(2, 4),
             'sem_seg_head.predictor.clip_model.visual.transformer.resblocks.0.attn.v_proj_weight': torch.zeros(2, 4)}
    out = from_reference_state_dict(state)
    packed = out['backbone.clip.model.visual.transformer.resblocks.0.attn.in_proj_weight']
    assert set(out) == {'decode_head.transformer.conv1.weight', 'decode_head.upsample1.weight',
                        'backbone.clip.model.visual.transformer.resblocks.0.attn.in_proj_weight'}
    assert packed.shape == (6, 4) and packed[2:4].eq(1).all() and packed[:2].eq(0).all()


def test_head_refuses_another_feature_grid():
    model = _model()
    with pytest.raises(ValueError, match=r'aggregates a \(6, 6\) feature grid'):
        model.decode_head(torch.randn(1, 32, 5, 5), [torch.randn(1, 64, 5, 5)] * 2, torch.randn(3, 1, 32))


def test_public_api_with_a_vocabulary_per_call():
    """The shipped zero-shot config through init_model / inference_model (tiny CLIP and head swapped in)."""
    import numpy as np

    from ovdense.apis import find_config, inference_model, init_model
    head = dict(width=64, embed_dim=32, text_guidance_proj_dim=8, appearance_guidance_proj_dim=8, decoder_dims=(32, 16),
                decoder_guidance_dims=(16, 16), decoder_guidance_proj_dims=(8, 4), num_layers=1, num_heads=2,
                hidden_dim=16, feature_resolution=(6, 6), window_size=3)
    model = init_model(find_config('catseg', 'ade150'), clip=dict(model_cfg=TINY_CLIP_CFG), allow_untrained=True,
                       cfg_options={'model.clip_resolution': 96, 'model.backbone.out_indices': (0, 1),
                                    **{f'model.decode_head.{k}': v for k, v in head.items()}})
    image = (np.random.default_rng(0).random((90, 120, 3)) * 255).astype(np.uint8)
    a = inference_model(model, image, vocabulary=['sky', 'road'])
    b = inference_model(model, image, vocabulary=['sky', 'road', 'car', 'person'])
    assert a.seg_logits.data.shape == (2, 90, 120) and b.seg_logits.data.shape == (4, 90, 120)
    assert len(model.vocabulary) == 150  # the config's vocabulary is untouched


def test_background_names_are_aggregated_with_the_classes_and_become_label_zero():
    """PAS-20b (the reference's voc20b.json + VOCbEvaluator): the classes and the background names aggregated
    together, a pixel whose best name is a background name is background. Same labels as the background names
    segmented as classes of their own, then every label beyond the classes mapped to background (label 0 here)."""
    classes, background = ('cat', 'dog', 'car'), ['wall', 'sky', 'road', 'tree']
    model = _model(classes=classes, background=background, mode='whole').eval()
    plain = _model(classes=classes + tuple(background), mode='whole').eval()
    plain.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 80, 112)
    samples = [SegDataSample(metainfo=dict(img_shape=(80, 112), ori_shape=(80, 112))) for _ in range(2)]
    with torch.no_grad():
        got = model.predict(x, samples)
        ref = plain.predict(x, [SegDataSample(metainfo=dict(s.metainfo)) for s in samples])
    assert model.label_names(model.vocabulary) == ('background',) + classes
    for g, r in zip(got, ref):
        assert g.seg_logits.data.shape == (4, 80, 112)
        label = r.pred_sem_seg.data + 1
        label[label > len(classes)] = 0
        assert torch.equal(g.pred_sem_seg.data, label)
    with pytest.raises(ValueError, match='trains without background names'):
        model.train()
        model.loss(x, [_sample(80, 112) for _ in range(2)])


def test_synonyms_are_reduced_to_classes():
    """With every name a query (``synonyms='max'``), the labels are classes: the max over each class's names."""
    model = _model(classes=('sky', 'road, street', 'car'), synonyms='max', mode='whole').eval()
    plain = _model(classes=('sky', 'road', 'street', 'car'), mode='whole').eval()
    plain.load_state_dict(model.state_dict())
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        got = model.predict(x)[0].seg_logits.data
        ref = plain.predict(x)[0].seg_logits.data
    assert got.shape[0] == 3
    assert torch.equal(got, torch.stack([ref[0], ref[1:3].amax(0), ref[3]]))
