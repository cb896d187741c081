import torch
from mmengine.model import ImgDataPreprocessor

from ovdense.clip import build_clip
from ovdense.datasets.captions import STYLES, OVSyntheticCaptionDataset, make_caption
from ovdense.models import OVCLIPPretrainer
from ovdense.testing import TINY_CLIP_CFG


def test_caption_dataset(tmp_path):
    ds = OVSyntheticCaptionDataset(8, seed=0, image_size=64, cache_dir=str(tmp_path))
    item = ds[3]
    assert item['inputs'].shape == (3, 64, 64) and item['inputs'].dtype == torch.uint8
    assert isinstance(item['data_samples'], str)
    assert len(list(tmp_path.glob('*.npz'))) == 1
    again = OVSyntheticCaptionDataset(8, seed=0, image_size=64, cache_dir=str(tmp_path))
    again[0]
    assert (again._images == ds._images).all()  # read back from the cache


def test_caption_dataset_single_object_part(tmp_path):
    ds = OVSyntheticCaptionDataset(10, seed=0, image_size=64, single_fraction=0.5)
    ds._build()
    assert all(len(m['objects']) <= 1 for m in ds._meta[:5])  # the single-object part comes first
    assert any(len(m['objects']) > 1 for m in ds._meta[5:])  # the rest keeps multi-object scenes
    import pytest
    with pytest.raises(ValueError, match='single_fraction'):
        OVSyntheticCaptionDataset(10, seed=0, single_fraction=1.5)


def test_zoom_keeps_every_object_and_drops_size_words():
    import json

    import numpy as np
    import pytest
    kw = dict(image_size=64, style_probs=(0, 0, 1, 0), semantic_keys=True)  # shape-only captions
    plain = OVSyntheticCaptionDataset(6, seed=0, **kw)
    same = OVSyntheticCaptionDataset(6, seed=0, zoom=(1.0, 1.0), zoom_prob=1.0, **kw)
    zoomed = OVSyntheticCaptionDataset(6, seed=0, zoom=(2.0, 2.0), zoom_prob=1.0, single_fraction=1.0, **kw)
    for ds in (plain, same, zoomed):
        ds._epoch_rng = np.random.default_rng(0)
    assert torch.equal(plain[0]['inputs'], same[0]['inputs'])  # zoom 1 = the whole image
    zoomed._build()
    for i in range(6):
        m = zoomed._meta[i]
        if not m['objects']:
            continue
        x0, y0, x1, y1 = m['objects'][0]['box']
        item = zoomed[i]
        key = json.loads(item['data_samples']['image_key'])
        assert key[1][0][2] is None  # no size word describes a zoomed image
        assert 'small' not in item['data_samples']['caption'] and 'large' not in item['data_samples']['caption']
    img = np.zeros((64, 64, 3), np.uint8)
    img[10:30, 40:52] = 255  # one object, box (40, 10, 52, 30): fits a 32-px window
    objs = [dict(box=[40.0, 10.0, 52.0, 30.0])]
    big = np.zeros((64, 64, 3), np.uint8)
    big[11:50, 11:50] = 255  # inside a fractional box larger than the 32-px window: the window grows to 41 px
    out = zoomed._zoom(big, [dict(box=[10.5, 10.5, 50.2, 50.2])], False, np.random.default_rng(0))
    assert out.shape == (64, 64, 3)
    assert abs(int((out[..., 0] > 127).sum()) - 39 ** 2 * (64 / 41) ** 2) < 0.1 * 39 ** 2 * (64 / 41) ** 2  # whole
    for seed in range(20):
        for flip in (False, True):
            src = img[:, ::-1] if flip else img
            out = zoomed._zoom(src, objs, flip, np.random.default_rng(seed))
            ys, xs = np.nonzero(out[..., 0] > 127)
            assert abs(len(ys) - 4 * 240) < 0.1 * 4 * 240  # drawn twice as large and whole (none cut off)
            assert ys.max() - ys.min() + 1 >= 38 and xs.max() - xs.min() + 1 >= 22
    with pytest.raises(ValueError, match='zoom'):
        OVSyntheticCaptionDataset(4, seed=0, zoom=(0.5, 2.0))


def test_shape_captions_name_no_colour():
    import numpy as np
    objs = [dict(cls='star', color='red', size='small', texture='striped')]
    rng = np.random.default_rng(0)
    assert make_caption(objs, 'grass', 'shape', rng) == 'a picture with a star.'
    assert 'red' in make_caption(objs, 'grass', 'full', rng) and 'grass' in make_caption(objs, 'grass', 'full', rng)
    assert set(STYLES) == {'full', 'color', 'shape', 'size_texture'}


def test_pretrainer_learns_and_exports(tmp_path):
    torch.manual_seed(0)
    model = OVCLIPPretrainer(TINY_CLIP_CFG, data_preprocessor=dict(type='ImgDataPreprocessor'))
    assert isinstance(model.data_preprocessor, ImgDataPreprocessor)
    imgs = torch.zeros(4, 3, 64, 64)
    imgs[0, 0] = imgs[2, 0] = 2.0  # two red images share a caption
    imgs[1, 2] = 2.0
    imgs[3, 1] = 2.0
    caps = ['a red circle.', 'a blue star.', 'a red circle.', 'a green cross.']  # duplicate = positives
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss = model(imgs, caps)['loss']
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    cfg, weights = model.export(tmp_path, 'tiny')
    clip = build_clip(config_file=cfg, checkpoint=weights)
    clip.load_weights()
    with torch.no_grad():
        assert torch.allclose(clip.encode_image(imgs), model.clip.encode_image(imgs), atol=1e-6)
    cfg16, weights16 = model.export(tmp_path, 'tiny16', dtype=torch.float16)  # the shipped checkpoint's format
    from safetensors.torch import load_file
    assert {v.dtype for v in load_file(weights16).values() if v.is_floating_point()} == {torch.float16}
    assert weights16.stat().st_size < 0.6 * weights.stat().st_size
    clip16 = build_clip(config_file=cfg16, checkpoint=weights16)
    clip16.load_weights()
    with torch.no_grad():
        assert torch.allclose(clip16.encode_image(imgs), model.clip.encode_image(imgs), atol=1e-2)


def test_export_hook_rejects_unknown_dtype():
    import pytest
    from ovdense.hooks import OVExportCLIPHook
    with pytest.raises(ValueError, match="'float16'"):
        OVExportCLIPHook('x', dtype='fp16')


def test_semantic_positives():
    """A caption is a positive of every image it truly describes, not only of its own image."""
    from ovdense.datasets.captions import caption_key, image_key
    from ovdense.models.pretrainers.clip_pretrainer import describes
    star = [dict(cls='star', color='red', size='small', texture='striped')]
    blue_star = [dict(cls='star', color='blue', size='large', texture='plain')]
    pair = star + [dict(cls='ring', color='blue', size='large', texture='plain')]
    assert describes(caption_key(star, 'grass', 'shape'), image_key(blue_star, 'sand'))
    assert not describes(caption_key(star, 'grass', 'color'), image_key(blue_star, 'sand'))  # "a red star."
    assert not describes(caption_key(star, 'grass', 'full'), image_key(star, 'sand'))  # "... on grass."
    assert not describes(caption_key(star, 'grass', 'color'), image_key(star, 'grass', gray=True))
    assert not describes(caption_key(star, 'grass', 'shape'), image_key(pair, 'grass'))  # one object named, two shown
    assert describes(caption_key(pair[::-1], 'grass', 'size_texture'), image_key(pair, 'grass'))  # order free

    torch.manual_seed(0)
    model = OVCLIPPretrainer(TINY_CLIP_CFG, data_preprocessor=dict(type='ImgDataPreprocessor'))
    imgs = torch.randn(2, 3, 64, 64)  # batch of 2: two stars, shape captions of different strings
    keys = dict(caption=['a picture with a star.', 'a red star.'],
                caption_key=[caption_key(blue_star, 'sand', 'shape'), caption_key(star, 'grass', 'color')],
                image_key=[image_key(blue_star, 'sand'), image_key(star, 'grass')])
    semantic = model(imgs, keys)['loss']
    by_string = model(imgs, keys['caption'])['loss']
    # image 1 (red star) is also described by caption 0: the targets differ, so do the losses
    assert not torch.isclose(semantic, by_string)
    img = model.clip.encode_image(imgs, normalize=True)
    txt = model.clip.encode_text(keys['caption'], normalize=True)
    logits = model.clip.logit_scale.exp().clamp(max=100) * img @ txt.t()
    pos = torch.tensor([[1., 0.], [1., 1.]])
    expected = 0.5 * (torch.nn.functional.cross_entropy(logits, pos / pos.sum(1, keepdim=True))
                      + torch.nn.functional.cross_entropy(logits.t(), pos.t() / pos.t().sum(1, keepdim=True)))
    assert torch.allclose(semantic, expected, atol=1e-6)


def test_zoom_curriculum_hook_switches_at_begin_and_on_resume(tmp_path):
    """Batches before ``begin`` are drawn unzoomed, the rest zoomed; a resume past ``begin`` zooms at once."""
    from mmengine.hooks import Hook
    from mmengine.runner import Runner

    from ovdense.hooks import OVZoomCurriculumHook

    seen = []

    class Record(Hook):
        priority = 'LOWEST'

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            seen.append(runner.train_loop.dataloader.dataset.zoom)  # what the next batch is drawn with

    torch.manual_seed(0)
    runner = Runner(
        model=OVCLIPPretrainer(TINY_CLIP_CFG, data_preprocessor=dict(type='ImgDataPreprocessor')),
        work_dir=str(tmp_path), default_scope='mmseg',
        train_dataloader=dict(batch_size=2, num_workers=0, sampler=dict(type='InfiniteSampler', shuffle=True),
                              collate_fn=dict(type='default_collate'),
                              dataset=dict(type='OVSyntheticCaptionDataset', num_images=8, seed=0, image_size=64)),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-4)),
        train_cfg=dict(by_epoch=False, max_iters=4),
        custom_hooks=[dict(type='OVZoomCurriculumHook', begin=2, zoom=(1.0, 4.0), zoom_prob=0.7), Record()],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=10)))
    assert runner.train_dataloader.dataset.zoom is None
    runner.train()
    assert seen == [None, (1.0, 4.0), (1.0, 4.0), (1.0, 4.0)]  # batches 0, 1 unzoomed; 2, 3 zoomed
    assert runner.train_dataloader.dataset.zoom_prob == 0.7

    class FakeRunner:  # resumed at iteration 3 > begin: zoom before the first batch
        iter = 3
        train_loop = runner.train_loop
        logger = runner.logger
    runner.train_loop.dataloader.dataset.set_zoom(None)
    OVZoomCurriculumHook(begin=2, zoom=(1.0, 2.0)).before_train(FakeRunner)
    assert runner.train_loop.dataloader.dataset.zoom == (1.0, 2.0)
    OVZoomCurriculumHook(begin=5, zoom=(1.0, 3.0)).before_train(FakeRunner)  # not yet
    assert runner.train_loop.dataloader.dataset.zoom == (1.0, 2.0)
    import pytest
    with pytest.raises(ValueError, match='begin'):
        OVZoomCurriculumHook(begin=-1, zoom=(1.0, 2.0))
