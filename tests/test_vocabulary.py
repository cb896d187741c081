import pytest
import torch

from ovdense.vocabulary import TextEmbeddingCache, Vocabulary, encode_queries, known_datasets


def test_from_list_and_synonyms():
    v = Vocabulary.from_list(['sky', ['person', 'man'], 'car, automobile'])
    assert v.names == ['sky', 'person', 'car']
    assert v.queries == ['sky', 'person', 'man', 'car', 'automobile']
    assert v.query_to_class.tolist() == [0, 1, 1, 2, 2]
    assert Vocabulary.from_list('sky, road , car').names == ['sky', 'road', 'car']
    typed = Vocabulary.from_list('sky, person | man ,car|automobile')  # the demos' syntax: '|' for synonyms
    assert typed.classes == (('sky',), ('person', 'man'), ('car', 'automobile'))
    with pytest.raises(ValueError, match='empty class name'):
        Vocabulary.from_list('sky, person |')


def test_from_txt(tmp_path):
    p = tmp_path / 'v.txt'
    p.write_text('background, wall, floor\n\ncat\n')
    v = Vocabulary.from_txt(p)
    assert v.names == ['background', 'cat'] and len(v.queries) == 4
    with pytest.raises(FileNotFoundError, match='vocabulary file not found'):
        Vocabulary.from_txt(tmp_path / 'missing.txt')


@pytest.mark.parametrize('name,n', [('voc21', 21), ('VOC20', 20), ('context60', 60), ('context59', 59),
                                    ('coco_object', 81), ('coco-stuff171', 171), ('ade20k', 150),
                                    ('cityscapes', 19), ('camvid', 11), ('coco80', 80), ('lvis', 1203)])
def test_from_dataset(name, n):
    assert len(Vocabulary.from_dataset(name)) == n


def test_errors_list_what_is_valid():
    with pytest.raises(ValueError, match='empty vocabulary'):
        Vocabulary.from_list([])
    with pytest.raises(ValueError, match="duplicate class name 'Sky'"):
        Vocabulary.from_list(['sky', 'road', 'Sky'])
    with pytest.raises(ValueError, match='empty class name'):
        Vocabulary.from_list('sky, , road')
    with pytest.raises(ValueError, match=r"valid: \['ade20k'"):
        Vocabulary.from_dataset('imagenet')
    assert 'lvis' in known_datasets()


def test_fingerprint():
    a = Vocabulary.from_list(['sky', 'road'])
    assert a.fingerprint == Vocabulary.from_list(['sky', 'road']).fingerprint
    assert a.fingerprint != Vocabulary.from_list(['road', 'sky']).fingerprint
    assert a.fingerprint != Vocabulary.from_list([['sky', 'heaven'], 'road']).fingerprint


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
    import ovdense.vocabulary as mod
    real = mod.encode_queries
    monkeypatch.setattr(mod, 'encode_queries', lambda *a, **k: calls.append(1) or real(*a, **k))
    v = Vocabulary.from_list(['cat', 'dog'])
    cache = TextEmbeddingCache(tmp_path)
    e1 = cache.get(tiny_clip, v, ['a {}.'])
    e2 = cache.get(tiny_clip, v, ['a {}.'])
    assert len(calls) == 1 and e1 is e2
    e3 = TextEmbeddingCache(tmp_path).get(tiny_clip, v, ['a {}.'])  # new process: read from disk
    assert len(calls) == 1 and torch.equal(e1, e3)
    assert list(tmp_path.glob('*.tmp')) == []
    TextEmbeddingCache(tmp_path).get(tiny_clip, v, ['the {}.'])  # other templates: other key
    assert len(calls) == 2


def test_encode_queries_in_groups_reports_progress(tiny_clip):
    """80 templates x 7 queries with 256-prompt batches: groups of 3 queries; same as one query at a time."""
    templates = [f'a photo number {i} of a {{}}.' for i in range(80)]
    queries = [f'thing {i}' for i in range(7)]
    seen = []
    emb = encode_queries(tiny_clip, queries, templates, progress=lambda *a: seen.append(a))
    assert seen == [('text', 3, 7), ('text', 6, 7), ('text', 7, 7)]
    one = torch.cat([encode_queries(tiny_clip, [q], templates) for q in queries])
    assert torch.allclose(emb, one, atol=1e-6)
