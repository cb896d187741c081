"""The one inference API: ``init_model`` / ``inference_model`` on every family, images of any shape, in
bounded memory, with trained weights loaded from checkpoints and a vocabulary changed between calls."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmengine.runner import save_checkpoint

from ovdense import apis
from ovdense.clip import CheckpointError
from ovdense.apis import ImageReadError, find_config, inference_model, init_model, list_configs
from ovdense.testing import TINY_CLIP_CFG
from ovdense.vocabulary import Vocabulary

CONFIG = find_config('naclip_tinyclip_synthetic-128')
VOCAB = Vocabulary.from_list(['grass', 'water', ['star', 'stars'], 'circle', 'square', 'heart'])
TINY4 = dict(model_cfg=dict(embed_dim=32, quick_gelu=True,
                            vision_cfg=dict(image_size=64, layers=4, width=64, head_width=32, patch_size=16),
                            text_cfg=dict(context_length=16, vocab_size=49408, width=32, heads=1, layers=1)))


@pytest.fixture(scope='module')
def model():
    return init_model(CONFIG, cfg_options={'model.pamr': dict(num_iter=3, dilations=(4, 8)), 'model.return_probs': True})


def _image(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_small_budget_gives_the_same_segmentation(model):
    image = _image(150, 230)
    whole = inference_model(model, image, vocabulary=VOCAB)
    budget = model.memory_budget
    try:
        model.memory_budget = 100_000  # tiles of a few dozen pixels, chunks of one or two classes
        small = inference_model(model, image, vocabulary=VOCAB)
    finally:
        model.memory_budget = budget
    assert torch.equal(small.pred_sem_seg.data, whole.pred_sem_seg.data)
    assert torch.allclose(small.seg_logits.data, whole.seg_logits.data, atol=1e-6)
    assert whole.pred_sem_seg.data.shape == (1, 150, 230) and len(whole.pred_sem_seg.data.unique()) > 1
    assert whole.metainfo['classes'] == tuple(VOCAB.names)


def test_concurrent_calls_with_other_vocabularies_do_not_meet(model):
    """The vocabulary travels with the images (their metainfo), not through the model: two threads segmenting with
    different vocabularies each get exactly what they get alone, and the model's own vocabulary is untouched."""
    from concurrent.futures import ThreadPoolExecutor
    images = [_image(64, 80, seed=s) for s in range(4)]
    vocabs = [VOCAB, Vocabulary.from_list(['snow', 'sand', 'ring', 'cross'])]
    alone = {(v, i): inference_model(model, im, vocabulary=vocabs[v]).pred_sem_seg.data
             for v in range(2) for i, im in enumerate(images)}
    own = model.vocabulary

    def run(job):
        v, i = job
        out = inference_model(model, images[i], vocabulary=vocabs[v])
        return job, out.pred_sem_seg.data, out.metainfo['classes']

    jobs = [(v, i) for _ in range(3) for i in range(4) for v in range(2)]
    with ThreadPoolExecutor(2) as pool:
        for (v, i), label, classes in pool.map(run, jobs):
            assert classes == tuple(vocabs[v].names) and torch.equal(label, alone[(v, i)]), (v, i)
    assert model.vocabulary == own
    assert len(alone[(1, 0)].unique()) > 1 and not torch.equal(alone[(0, 0)], alone[(1, 0)])


@pytest.mark.parametrize('shape', [(1, 400), (3, 5000), (500, 2)])
def test_thin_images(model, shape):
    out = inference_model(model, _image(*shape), vocabulary=VOCAB)
    assert out.pred_sem_seg.data.shape == (1, *shape) and int(out.pred_sem_seg.data.max()) < len(VOCAB)


def test_paths_arrays_and_bad_input(model, tmp_path, monkeypatch):
    img = _image(64, 80, seed=3)
    cv2.imwrite(str(tmp_path / 'a.png'), img)  # BGR on disk, as cv2 / mmcv read it
    by_path, by_array = inference_model(model, [tmp_path / 'a.png', img])
    assert torch.equal(by_path.pred_sem_seg.data, by_array.pred_sem_seg.data)
    assert by_path.img_path == str(tmp_path / 'a.png')
    (tmp_path / 'bad.png').write_bytes(b'not a png')
    with pytest.raises(ImageReadError, match='bad.png.*corrupt'):
        inference_model(model, tmp_path / 'bad.png')
    with pytest.raises(ImageReadError, match=r'uint8 BGR array, got float32'):
        inference_model(model, img.astype(np.float32))
    with pytest.raises(ValueError, match='empty vocabulary'):
        inference_model(model, img, vocabulary=[])
    with pytest.raises(ImageReadError, match=r'non-empty \(H, W, 3\) uint8 BGR array, got uint8 \(0, 0, 3\)'):
        inference_model(model, np.zeros((0, 0, 3), np.uint8))
    with pytest.raises(ImageReadError, match='image 1: .* got Tensor .normalised tensors go to model.predict'):
        inference_model(model, [img, torch.zeros(3, 64, 64)])
    monkeypatch.setattr(apis, 'MAX_PIXELS', 10_000)
    with pytest.raises(ImageReadError, match=r'too large \(101x100 > 10000 pixels\)'):
        inference_model(model, _image(100, 101))


def _family(name, tmp_path):
    """A model of each family from its shipped config, small enough for CPU; the trained ones get a
    checkpoint of (random) trained weights written and loaded through ``init_model``."""
    if name == 'OVSegmentor':
        return init_model(find_config('clearclip_tinyclip_synthetic-128'))
    clip = TINY4 if name == 'OVDenseCLIP' else None
    if name == 'OVTextSegmentor':
        config, opts = find_config('textseg_tinyclip_synthetic-128'), {}
    elif name == 'OVCATSeg':
        config, opts = find_config('catseg_tinyclip_synthetic-128'), {}
    elif name == 'OVDenseCLIP':
        config = find_config('denseclip_vit-b16_ade20k-640')
        opts = {'model.backbone.out_indices': (0, 1, 2, 3),
                'model.backbone.norm_cfg': dict(type='BN'), 'model.decode_head.norm_cfg': dict(type='BN'),
                'model.context_decoder.transformer_width': 32, 'model.neck.in_channels': [64, 64, 64 + 150, 64],
                'model.data_preprocessor.size': (64, 64), 'model.test_cfg': dict(mode='whole')}
    else:
        config = find_config('fvit_tinyclip_synthetic-128')
        opts = {}
    with pytest.raises(ValueError, match='has trained parts and no checkpoint'):
        init_model(config, cfg_options=opts, clip=clip)
    torch.manual_seed(1)
    trained = init_model(config, cfg_options=opts, clip=clip, allow_untrained=True)
    with torch.no_grad():  # stands for training: every trained parameter moves
        for n, p in trained.named_parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
    path = tmp_path / f'{name}.pth'
    save_checkpoint({'state_dict': trained.state_dict()}, str(path))
    model = init_model(config, path, cfg_options=opts, clip=clip)
    for (n, a), b in zip(trained.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), n  # the checkpoint is what was loaded
    return model


@pytest.mark.parametrize('family', apis.FAMILIES)
def test_inference_model_every_family(family, tmp_path):
    """Two images (a path and an array, different sizes) and a vocabulary changed between calls."""
    model = _family(family, tmp_path)
    assert type(model).__name__ == family and model.cfg is not None
    img = _image(96, 128, seed=1)
    cv2.imwrite(str(tmp_path / 'x.png'), _image(80, 100, seed=2))
    first = inference_model(model, [tmp_path / 'x.png', img])
    names = tuple(model.vocabulary.names)
    if family == 'OVDenseCLIP':  # its decode head is sized by its 150 trained classes: a subset is renamed
        other = [f'thing {i}' for i in range(150)]
    else:
        other = ['circle', 'sky', 'road']
    second = inference_model(model, [tmp_path / 'x.png', img], vocabulary=other)
    assert tuple(model.vocabulary.names) == names  # the call's vocabulary does not stick
    for a, b, (h, w) in zip(first, second, [(80, 100), (96, 128)]):
        assert a.metainfo['classes'] == names and b.metainfo['classes'] == tuple(other)
        if family == 'OVFViT':
            assert a.pred_instances.bboxes.shape[1] == 4 and len(a.pred_instances) > 0
            assert int(b.pred_instances.labels.max()) < len(other)
            assert (a.pred_instances.bboxes[:, 2] <= w + 1e-3).all() and (a.pred_instances.bboxes[:, 3] <= h + 1e-3).all()
        else:
            assert a.pred_sem_seg.data.shape == b.pred_sem_seg.data.shape == (1, h, w)
            assert int(a.pred_sem_seg.data.max()) < len(names) and int(b.pred_sem_seg.data.max()) < len(other)
    if family != 'OVFViT':  # another vocabulary gives another segmentation
        assert not torch.equal(first[1].pred_sem_seg.data, second[1].pred_sem_seg.data)
    again = inference_model(model, img)
    if family == 'OVFViT':
        assert torch.equal(again.pred_instances.scores, first[1].pred_instances.scores)
    else:
        assert torch.equal(again.pred_sem_seg.data, first[1].pred_sem_seg.data)


def test_siglip_segments_an_image_through_inference_model(tmp_path):
    """The shipped SigLIP config (its tower swapped for a tiny random SigLIP): SigLIP's statistics, the
    MAP-head dense path and the sigmoid match, a path and a batch of two arrays of different sizes."""
    from ovdense.testing import TINY_SIGLIP_CFG, register_tiny_siglip
    register_tiny_siglip()
    opts = {'model.slide_crop': 64, 'model.slide_stride': 32, 'model.text_encoder.templates': ['a photo of a {}.'],
            'model.return_probs': True}
    model = init_model(find_config('clearclip_siglip-b16_voc21-448'), clip=dict(model_cfg=TINY_SIGLIP_CFG),
                       cfg_options=opts)
    assert model.backbone.tower.family == 'siglip' and model.activation == 'sigmoid'
    assert model.match()[1] == pytest.approx(-10.0)  # SigLIP's own bias (its initial value here)
    assert model.data_preprocessor.mean.flatten().tolist() == [127.5] * 3
    cv2.imwrite(str(tmp_path / 'x.png'), _image(80, 100, seed=2))
    outs = inference_model(model, [tmp_path / 'x.png', _image(96, 128, seed=1)])
    for out, (h, w) in zip(outs, [(80, 100), (96, 128)]):
        label, probs = out.pred_sem_seg.data, out.seg_logits.data
        assert label.shape == (1, h, w) and probs.shape == (21, h, w) and len(out.metainfo['classes']) == 21
        assert torch.equal(probs.argmax(0), label[0])  # the argmax of the sigmoid probabilities
        assert ((probs > 0) & (probs < 1)).all()


def test_init_model_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='config not found'):
        init_model(tmp_path / 'missing.py')
    with pytest.raises(FileNotFoundError, match='checkpoint not found'):
        init_model(CONFIG, tmp_path / 'missing.pth')
    (tmp_path / 'junk.pth').write_bytes(b'\x00' * 64)
    with pytest.raises(CheckpointError, match='junk.pth cannot be loaded into OVSegmentor'):
        init_model(CONFIG, tmp_path / 'junk.pth')
    save_checkpoint({'state_dict': {'head.weight': torch.zeros(3)}}, str(tmp_path / 'other.pth'))
    with pytest.raises(CheckpointError, match='other.pth.*(missing|unexpected)'):
        init_model(CONFIG, tmp_path / 'other.pth')
    state = init_model(CONFIG).state_dict()
    key = 'backbone.clip.model.visual.proj'
    save_checkpoint({'state_dict': {**state, key: torch.full_like(state[key], float('nan'))}}, str(tmp_path / 'nan.pth'))
    with pytest.raises(CheckpointError, match=f'nan.pth: tensor {key} has .* NaN'):  # not a map of label 0
        init_model(CONFIG, tmp_path / 'nan.pth')


def test_list_and_find_configs():
    names = list_configs()
    assert 'clearclip/clearclip_vit-b16_voc21-448' in names and not any(n.startswith('_base_') for n in names)
    assert list_configs('synthetic/*clip*_tinyclip_*')
    assert find_config('clearclip', 'context59').name == 'clearclip_vit-b16_context59-448.py'
    assert find_config('configs/naclip/naclip_vit-b16_voc21-336').name == 'naclip_vit-b16_voc21-336.py'
    with pytest.raises(ValueError, match=r"methods: \['catseg', 'clearclip'"):
        find_config('segformer', 'voc21')


def test_exif_orientation_is_applied_and_the_header_size_checked_before_decoding(tmp_path, monkeypatch):
    """A portrait photo stored landscape with its EXIF orientation is read upright (as PIL's exif_transpose shows it);
    a PNG whose header claims 100000 x 100000 pixels is refused from the header, without decoding."""
    import struct
    import zlib

    from PIL import Image, ImageOps
    arr = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    for orientation in range(1, 9):
        im = Image.fromarray(arr)
        exif = im.getexif()
        exif[0x0112] = orientation
        path = tmp_path / f'o{orientation}.png'
        im.save(path, exif=exif)
        upright = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert('RGB'))
        assert np.array_equal(apis.read_image(path), upright), orientation
    assert apis.read_image(tmp_path / 'o6.png').shape == (30, 20, 3)

    def chunk(kind, data):
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
    huge = tmp_path / 'huge.png'
    huge.write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', 100000, 100000, 8, 2, 0, 0, 0))
                     + chunk(b'IDAT', zlib.compress(b'')) + chunk(b'IEND', b''))
    import cv2

    def no_decoding(*args, **kwargs):
        raise AssertionError('decoded')
    monkeypatch.setattr(cv2, 'imdecode', no_decoding)  # refused from the header: nothing is decoded
    with pytest.raises(ImageReadError, match='huge.png is too large'):
        apis.read_image(huge)


def test_model_zoo():
    """Every zoo model names a shipped config that builds, the weights to use, published results with their source."""
    from mmengine.config import Config

    from ovdense.apis import config_root, get_model, list_models, model_info
    names = list_models()
    assert len(names) >= 20 and list_models('catseg_*') == sorted(n for n in names if n.startswith('catseg_'))
    for name in names:
        info = model_info(name)
        assert (config_root() / Path(info['Config']).relative_to('configs')).is_file(), name
        assert info['Metadata']['Weights'] and info['Collection']['Results source'], name
        assert all(isinstance(v, float) and 0 < v < 100 for r in info['Results'] for v in r['Metrics'].values()), name
        assert Config.fromfile(str(find_config(name))).model.type.startswith('OV'), name
    assert model_info('sclip_vit-b16_voc21-336')['Results'][0]['Metrics'] == {'mIoU': 59.63}
    assert model_info('resclip_vit-b16_voc20-336')['Results'][0]['Metrics'] == {'mIoU': 86.0}
    index = Path(__file__).parents[1] / 'model-index.yml'  # mim / the metafile tools read the zoo from it
    if index.is_file():
        import yaml
        listed = sorted(yaml.safe_load(index.read_text())['Import'])
        assert listed == sorted(f'configs/{p.parent.name}/metafile.yml' for p in config_root().glob('*/metafile.yml'))
    model = get_model('sclip_vit-b16_voc21-336', clip=dict(model_cfg=TINY_CLIP_CFG))
    assert type(model).__name__ == 'OVSegmentor' and len(model.vocabulary) == 21
    with pytest.raises(ValueError, match=r"'nope' is not in the model zoo; valid: \['catseg_vit-b16_ade150-640'"):
        model_info('nope')
