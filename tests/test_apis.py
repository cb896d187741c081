"""The public segmentation API on images of any shape, in bounded memory, with the shipped tiny CLIP."""
from pathlib import Path

import numpy as np
import pytest
import torch

from ovdense import apis
from ovdense.apis import ImageReadError, init_segmentor, segment
from ovdense.vocabulary import Vocabulary

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / 'configs/synthetic/naclip_tinyclip_synthetic-128.py'
VOCAB = Vocabulary.from_list(['grass', 'water', ['star', 'stars'], 'circle', 'square', 'heart'])


@pytest.fixture(scope='module')
def model_cfg():
    return init_segmentor(CONFIG, vocabulary=VOCAB, cfg_options={'model.pamr': dict(num_iter=3, dilations=(4, 8))})


def _image(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_small_budget_gives_the_same_segmentation(model_cfg):
    model, cfg = model_cfg
    image = _image(150, 230)
    whole = segment(model, cfg, image, return_probs=True)
    budget = model.memory_budget
    try:
        model.memory_budget = 100_000  # tiles of a few dozen pixels, chunks of one or two classes
        small = segment(model, cfg, image, return_probs=True)
    finally:
        model.memory_budget = budget
    assert torch.equal(small['label'], whole['label'])
    assert torch.allclose(small['probs'], whole['probs'], atol=1e-6)
    assert whole['label'].shape == (150, 230) and len(whole['label'].unique()) > 1
    assert 'probs' not in segment(model, cfg, image)  # probabilities only when asked for


@pytest.mark.parametrize('shape', [(1, 400), (3, 5000), (500, 2)])
def test_thin_images(model_cfg, shape):
    model, cfg = model_cfg
    out = segment(model, cfg, _image(*shape))
    assert out['label'].shape == shape and int(out['label'].max()) < len(VOCAB)


def test_over_the_pixel_limit_is_refused_by_name(model_cfg, monkeypatch):
    model, cfg = model_cfg
    monkeypatch.setattr(apis, 'MAX_PIXELS', 10_000)
    with pytest.raises(ImageReadError, match=r'too large \(101x100 > 10000 pixels\)'):
        segment(model, cfg, _image(100, 101))


def test_explicit_empty_vocabulary_is_an_error(model_cfg):
    model, cfg = model_cfg
    with pytest.raises(ValueError, match='empty vocabulary'):
        segment(model, cfg, _image(20, 20), vocabulary=[])
