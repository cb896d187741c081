import pytest
import torch
from mmseg.structures import SegDataSample

from ovdense.models import OVCLIPViT, OVSegDataPreProcessor, OVSegmentor
from ovdense.models.utils import PAMR, slide_windows
from ovdense.testing import random_images, tiny_siglip
from ovdense.vocabulary import Vocabulary

VOCAB = Vocabulary.from_list(['sky', ['person', 'man'], 'car'])


def make(tiny_clip, **kw):
    kw.setdefault('return_probs', True)
    text = dict(vocabulary=VOCAB, templates=kw.pop('templates', 'none'))
    return OVSegmentor(OVCLIPViT(tiny_clip, dict(type='OVClearCLIP')), text, slide_crop=kw.pop('slide_crop', 64),
                       slide_stride=kw.pop('slide_stride', 32), **kw).eval()


def test_slide_windows_layout():
    assert slide_windows(336, 441, 224, 112) == [
        (0, 0, 224, 224), (0, 112, 224, 336), (0, 217, 224, 441),
        (112, 0, 336, 224), (112, 112, 336, 336), (112, 217, 336, 441)]
    assert slide_windows(100, 50, 224, 112) == [(0, 0, 100, 50)]
    with pytest.raises(ValueError):
        slide_windows(10, 10, 0, 1)


def test_window_batching_does_not_change_result(tiny_clip):
    x = random_images(1, 96, 128)[0]
    text = make(tiny_clip).class_embeddings().queries
    a = make(tiny_clip, window_batch=1).encode_image(x, text)
    b = make(tiny_clip, window_batch=16).encode_image(x, text)
    assert torch.allclose(a, b, atol=1e-5)


def test_single_window_equals_whole(tiny_clip):
    x = random_images(1, 64, 64)[0]
    text = make(tiny_clip).class_embeddings().queries
    assert torch.allclose(make(tiny_clip).encode_image(x, text), make(tiny_clip, slide_crop=0).encode_image(x, text),
                          atol=1e-6)


def test_postprocess_synonyms_threshold_area(tiny_clip):
    seg = make(tiny_clip, logit_scale=1.0)
    q2c = VOCAB.query_to_class
    logits = torch.zeros(4, 2, 2)
    logits[2, 0, 0] = 5.0  # 'man' wins at (0,0) -> class person
    probs, label = seg.postprocess(logits, q2c)
    assert probs.shape == (3, 2, 2) and label[0, 0, 0] == 1
    assert torch.allclose(probs[1, 0, 0], torch.softmax(logits[:, 0, 0], 0)[1:3].max())
    seg.prob_thd = 0.9
    _, label = seg.postprocess(logits, q2c)
    assert label[0, 0, 0] == 1 and (label[0].flatten()[1:] == 0).all()  # uncertain -> background_index 0
    seg.prob_thd, seg.area_thd = 0.0, 0.5
    logits = torch.zeros(4, 2, 2)
    logits[3] = 5.0
    logits[1, 0, 0] = 10.0  # person takes 1 pixel of 4 foreground pixels: at most 50% -> dropped
    probs, label = seg.postprocess(logits, q2c)
    assert (label == 2).all() and probs[1].abs().sum() == 0


def test_sigmoid_match_with_the_clips_own_scale_and_bias():
    """SigLIP: each class's probability is sigmoid(scale * cos + bias) of its best name, on its own; the argmax is
    the softmax's; prob_thd applies to that probability; tiled and chunked == one piece."""
    clip = tiny_siglip()
    with torch.no_grad():
        clip.model.logit_scale.fill_(torch.tensor(20.0).log())
        clip.model.logit_bias.fill_(-2.0)
    seg = make(clip, activation='sigmoid', logit_scale=None)
    assert seg.match() == pytest.approx((20.0, -2.0))
    x = random_images(1, 64, 96)
    meta = [dict(img_shape=(64, 96), ori_shape=(50, 70))]
    out = seg.inference(x, meta, return_raw=True)[0]
    q2c = VOCAB.query_to_class
    cls = torch.stack([out['logits'][q2c == c].amax(0) for c in range(3)])
    assert torch.allclose(out['probs'], torch.sigmoid(20.0 * cls - 2.0), atol=1e-5)
    assert not torch.allclose(out['probs'].sum(0), torch.ones(50, 70), atol=1e-2)  # no normaliser
    softmax = make(clip, logit_scale=20.0)
    assert torch.equal(out['label'], softmax.inference(x, meta)[0]['label'])
    seg.prob_thd = float(out['probs'].amax(0).median())
    thd = seg.inference(x, meta)[0]['label']
    low = out['probs'].amax(0) < seg.prob_thd
    assert low.any() and (thd[0][low] == 0).all() and torch.equal(thd[0][~low], out['label'][0][~low])
    seg.tile_size, seg.chunk_queries = 16, 2
    tiled = seg.inference(x, meta, return_probs=True)[0]
    assert torch.equal(tiled['label'], thd) and torch.allclose(tiled['probs'], out['probs'], atol=1e-6)
    seg.renormalize = True  # NACLIP's renormalisation: the class probabilities over the vocabulary sum to 1
    renorm = seg.inference(x, meta, return_probs=True)[0]['probs']
    assert torch.allclose(renorm, out['probs'] / out['probs'].sum(0), atol=1e-5)
    with pytest.raises(ValueError, match="valid: \\['softmax', 'sigmoid'\\]"):
        make(clip, activation='tanh')
    with pytest.raises(ValueError, match='logit_bias'):
        make(clip, logit_bias=-1.0)


def test_vocabulary_swap_without_rebuild(tiny_clip):
    seg = make(tiny_clip)
    x = random_images(1, 64, 64)
    meta = [dict(img_shape=(64, 64), ori_shape=(32, 48))]
    r1 = seg.inference(x, meta)[0]
    assert r1['probs'].shape == (3, 32, 48) and r1['label'].shape == (1, 32, 48)
    r2 = seg.inference(x, meta, vocabulary=Vocabulary.from_list(['a', 'b', 'c', 'd', 'e']))[0]
    assert r2['probs'].shape == (5, 32, 48)
    seg.set_vocabulary(['tree', 'road'])
    assert seg.inference(x, meta)[0]['probs'].shape == (2, 32, 48)
    with pytest.raises(ValueError, match='no vocabulary'):
        OVSegmentor(OVCLIPViT(tiny_clip, dict(type='OVClearCLIP')), dict(templates='none')).inference(x, meta)


def test_batch2_mixed_sizes_through_preprocessor(tiny_clip):
    seg = make(tiny_clip, pamr=dict(num_iter=2, dilations=(1, 2)), renormalize=True)
    mean, std = tiny_clip.image_stats  # the CLIP's own statistics (others are refused)
    seg.data_preprocessor = OVSegDataPreProcessor(mean=[255 * m for m in mean], std=[255 * s for s in std])
    imgs = [torch.randint(0, 255, (3, 64, 80), dtype=torch.uint8), torch.randint(0, 255, (3, 96, 64), dtype=torch.uint8)]
    samples = [SegDataSample(metainfo=dict(img_shape=tuple(i.shape[1:]), ori_shape=tuple(i.shape[1:]))) for i in imgs]
    out = seg.test_step(dict(inputs=imgs, data_samples=samples))
    assert [tuple(s.pred_sem_seg.data.shape) for s in out] == [(1, 64, 80), (1, 96, 64)]
    for img, s in zip(imgs, out):  # same as running each image alone: padding never leaks in
        alone = seg.test_step(dict(inputs=[img], data_samples=[SegDataSample(metainfo=s.metainfo)]))[0]
        assert torch.allclose(alone.seg_logits.data, s.seg_logits.data, atol=1e-5)
        assert torch.allclose(s.seg_logits.data.sum(0), torch.ones(1))  # renormalised


def test_pamr_keeps_constant_scores():
    scores = torch.rand(1, 3, 1, 1).expand(1, 3, 20, 24).contiguous()
    out = PAMR(5, (1, 2))(torch.rand(1, 3, 20, 24), scores)
    assert torch.allclose(out, scores, atol=1e-5)


def test_training_free_has_no_loss(tiny_clip):
    with pytest.raises(NotImplementedError, match='training-free'):
        make(tiny_clip).loss(random_images(1), [])
