import pytest

from ovdense.vocabulary import Vocabulary, known_datasets


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


def test_names_have_one_spelling():
    """NFC / NFD spellings of one name are one name; zero-width characters are dropped (an invisible class, or two
    names that look alike, would otherwise be distinct classes with identical embeddings)."""
    import pytest
    assert Vocabulary.from_list(['cafe\u0301', 'ro\u200bad']).names == ['caf\u00e9', 'road']
    with pytest.raises(ValueError, match="duplicate class name 'caf"):
        Vocabulary.from_list(['caf\u00e9', 'cafe\u0301'])
    with pytest.raises(ValueError, match='empty class name'):
        Vocabulary.from_list(['sky', '\u200b'])
    with pytest.raises(ValueError, match='duplicate'):
        Vocabulary.from_list(['sky', 's\ufeffky'])
