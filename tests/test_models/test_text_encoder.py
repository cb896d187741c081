"""The text side: one encoder for every family, its cache follows the weights really in the model."""
import pytest
import torch
from mmengine.runner import load_checkpoint, save_checkpoint

from ovdense.models import OVCLIPViT, OVSegmentor, OVTextEncoder
from ovdense.models.text import TextEmbeddingCache, encode_queries
from ovdense.testing import random_images, tiny_clip as make_clip
from ovdense.vocabulary import Vocabulary


def test_encode_queries_matches_reference_recipe(tiny_clip):
    templates = ['a photo of a {}.', 'a {} in the scene.', 'art of the {}.']
    emb = encode_queries(tiny_clip, ['cat', 'dog'], templates, batch_size=2)
    with torch.no_grad():
        ref = []
        for q in ['cat', 'dog']:
            f = tiny_clip.encode_text([t.format(q) for t in templates])
            f = f / f.norm(dim=-1, keepdim=True)
            f = f.mean(0)
            ref.append(f / f.norm())
    assert torch.allclose(emb, torch.stack(ref), atol=1e-6)


def test_text_cache_memory_and_disk(tmp_path, tiny_clip, monkeypatch):
    calls = []
    import ovdense.models.text.text_encoder as mod
    real = mod.encode_queries
    monkeypatch.setattr(mod, 'encode_queries', lambda *a, **k: calls.append(1) or real(*a, **k))
    v = ['cat', 'dog']
    cache = TextEmbeddingCache(tmp_path)
    e1 = cache.get(tiny_clip, v, ['a {}.'])
    e2 = cache.get(tiny_clip, v, ['a {}.'])
    assert len(calls) == 1 and e1 is e2
    e3 = TextEmbeddingCache(tmp_path).get(tiny_clip, v, ['a {}.'])  # new process: read from disk
    assert len(calls) == 1 and torch.equal(e1, e3)
    assert list(tmp_path.glob('*.tmp')) == []
    TextEmbeddingCache(tmp_path).get(tiny_clip, v, ['the {}.'])  # other templates: other key
    assert len(calls) == 2


def test_text_cache_keyed_by_activation(tmp_path):
    """``ViT-B-16`` and ``ViT-B-16-quickgelu`` with the same weights compute different embeddings: the disk cache
    must not serve one the other's (the tiny CLIP with and without QuickGELU, weights copied)."""
    from ovdense.clip import build_clip
    from ovdense.testing import TINY_CLIP_CFG
    quick = build_clip(model_cfg=TINY_CLIP_CFG)
    gelu = build_clip(model_cfg=dict(TINY_CLIP_CFG, quick_gelu=False))
    gelu.model.load_state_dict(quick.model.state_dict())
    v, t = ['cat', 'dog'], ['a {}.']
    assert torch.equal(quick.model.token_embedding.weight, gelu.model.token_embedding.weight)
    assert quick.text_fingerprint() != gelu.text_fingerprint()
    served = TextEmbeddingCache(tmp_path).get(quick, v, t)
    got = TextEmbeddingCache(tmp_path).get(gelu, v, t)  # a new process with the other tower, same cache folder
    assert len(list(tmp_path.glob('text_*.safetensors'))) == 2
    assert torch.allclose(got, encode_queries(gelu, v, t), atol=1e-6)
    assert (got - served).abs().max() > 1e-4


def test_encode_queries_in_groups_reports_progress(tiny_clip):
    """80 templates x 7 queries with 256-prompt batches: groups of 3 queries; same as one query at a time."""
    templates = [f'a photo number {i} of a {{}}.' for i in range(80)]
    queries = [f'thing {i}' for i in range(7)]
    seen = []
    emb = encode_queries(tiny_clip, queries, templates, batch_size=256, progress=lambda *a: seen.append(a))
    assert seen == [('text', 3, 7), ('text', 6, 7), ('text', 7, 7)]
    one = torch.cat([encode_queries(tiny_clip, [q], templates) for q in queries])
    assert torch.allclose(emb, one, atol=1e-6)


def _segmentor(clip):
    return OVSegmentor(OVCLIPViT(clip, dict(type='OVClearCLIP')), dict(vocabulary=['sky', 'road', 'car'], templates=['a {}.']),
                       slide_crop=0, return_probs=True).eval()


def _probs(seg):
    x = random_images(1, 64, 64, seed=3)
    return seg.inference(x, [dict(img_shape=(64, 64), ori_shape=(64, 64))])[0]['probs']


@pytest.mark.parametrize('how', ['load_state_dict', 'load_checkpoint', 'in_place', 'new_parameter'])
def test_outputs_follow_the_text_weights(tmp_path, how):
    """After any change of the text tower (loading other weights or editing them in place) the embeddings
    are re-encoded: the output is the one of a model built with the new weights, not the cached old one."""
    seg = _segmentor(make_clip(0))
    before = _probs(seg)
    assert torch.equal(_probs(seg), before)  # cached, and deterministic
    other = _segmentor(make_clip(1))  # other text (and vision) weights
    text_keys = {k: v for k, v in other.state_dict().items() if 'backbone.clip.model.visual' not in k
                 and k.startswith('backbone.clip.model.')}
    if how == 'load_state_dict':
        seg.load_state_dict(text_keys, strict=False)
    elif how == 'load_checkpoint':
        path = tmp_path / 'other.pth'
        save_checkpoint({'state_dict': text_keys}, str(path))
        load_checkpoint(seg, str(path), map_location='cpu', strict=False)
    elif how == 'in_place':
        with torch.no_grad():
            for name, p in seg.backbone.clip.model.named_parameters():
                if not name.startswith('visual.'):
                    p.copy_(dict(other.backbone.clip.model.named_parameters())[name])
    else:
        m = seg.backbone.clip.model
        m.text_projection = torch.nn.Parameter(other.backbone.clip.model.text_projection.detach().clone())
        m.token_embedding.weight = torch.nn.Parameter(other.backbone.clip.model.token_embedding.weight.detach().clone())
        for dst, src in zip(m.transformer.parameters(), other.backbone.clip.model.transformer.parameters()):
            dst.data = src.detach().clone()
        m.ln_final.load_state_dict(other.backbone.clip.model.ln_final.state_dict())
        m.positional_embedding = torch.nn.Parameter(other.backbone.clip.model.positional_embedding.detach().clone())
    after = _probs(seg)
    # same vision weights as before, the other model's text weights: encode the vocabulary afresh to compare
    fresh = _segmentor(make_clip(0))
    fresh.backbone.clip.model.load_state_dict(
        dict(fresh.backbone.clip.model.state_dict(), **{k[len('backbone.clip.model.'):]: v for k, v in text_keys.items()}))
    assert not torch.allclose(after, before, atol=1e-3)
    assert torch.allclose(after, _probs(fresh), atol=1e-6)


def test_one_encoder_every_rule():
    clip = make_clip(0)
    vocab = Vocabulary.from_list(['sky', ['person', 'man'], 'car'])
    enc = OVTextEncoder(vocab, templates='none')
    e = enc(clip)
    assert e.queries.shape == (4, 32) and e.query_to_class.tolist() == [0, 1, 1, 2] and e.background is None
    scores = torch.tensor([[0.1, 0.2, 0.7, 0.3]])
    assert torch.equal(e.reduce(scores), torch.tensor([[0.1, 0.7, 0.3]]))
    mean = OVTextEncoder(vocab, templates='none', synonyms='mean')(clip)
    want = torch.nn.functional.normalize(e.queries[1] + e.queries[2], dim=0)
    assert mean.queries.shape == (3, 32) and torch.allclose(mean.queries[1], want, atol=1e-6)
    assert abs(e.logit_scale - float(clip.logit_scale.exp())) < 1e-5
    bg = OVTextEncoder(vocab, templates='none', background=['background', 'wall'])(clip)
    assert bg.background.shape == (2, 32)
    assert torch.allclose(bg.background, encode_queries(clip, ['background', 'wall'], ['{}']), atol=1e-6)
    learnt = OVTextEncoder(vocab, background='learnt', embed_dim=32)
    assert learnt(clip).background.shape == (1, 32) and learnt.background.requires_grad
    first = OVTextEncoder(vocab, templates='none', synonyms='first')(clip)  # CAT-Seg: a class is its first name
    assert first.queries.shape == (3, 32) and torch.allclose(first.queries, e.queries[[0, 1, 3]], atol=1e-6)
    assert first.query_to_class.tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match=r"valid: \['max', 'mean', 'first'\]"):
        OVTextEncoder(vocab, synonyms='last')
    with pytest.raises(ValueError, match='background'):
        OVTextEncoder(vocab, background='zeros')
    with pytest.raises(ValueError, match="unknown template set 'imagenet'"):
        OVTextEncoder(vocab, templates='imagenet')
    with pytest.raises(ValueError, match='no vocabulary'):
        OVTextEncoder()(clip)
    assert OVTextEncoder()(clip, ['a', 'b']).num_classes == 2  # the vocabulary of the call
