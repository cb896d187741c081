"""Bounded-memory inference is exact: tiles x class chunks give what one piece gives, and one piece gives
what the plain full-tensor recipe (F.interpolate, torch.softmax, stacked PAMR) gives."""
import pytest
import torch
import torch.nn.functional as F

from ovdense.models import OVCLIPViT, OVSegmentor
from ovdense.models.utils import PAMR
from ovdense.models.utils.chunked import SigmoidReducer, SoftmaxReducer, class_chunks, plan_chunks, resize_region, source_span
from ovdense.models.methods import registered_methods
from ovdense.testing import random_images, tiny_method_config
from ovdense.vocabulary import Vocabulary

# 4 classes, 7 queries: chunks of 2 or 3 queries never divide it, and synonyms straddle chunk borders
VOCAB = Vocabulary.from_list(['sky', ['person', 'man', 'woman'], 'car', ['tree', 'bush']])
MODES = sorted(registered_methods())


def _stacked_pamr(image, scores, num_iter, dilations):
    """NACLIP's PAMR as the reference writes it: every neighbour stacked, then summed."""
    off8 = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]
    off9 = off8[:4] + [(0, 0)] + off8[4:]

    def nb(x, offs):
        H, W = x.shape[-2:]
        out = []
        for d in dilations:
            xp = F.pad(x, [d] * 4, mode='replicate')
            out += [xp[..., d + dy * d:d + dy * d + H, d + dx * d:d + dx * d + W] for dy, dx in offs]
        return torch.stack(out, 2)
    std = nb(image, off9).std(2, keepdim=True)
    aff = -(image.unsqueeze(2) - nb(image, off8)).abs() / (1e-8 + 0.1 * std)
    aff = torch.softmax(aff.mean(1, keepdim=True), 2)
    for _ in range(num_iter):
        scores = (nb(scores, off8) * aff).sum(2)
    return scores


def _plain_postprocess(logits, q2c, *, scale, area_thd=None, prob_thd=0.0, renormalize=False, bg=0):
    """The full-tensor recipe (SCLIP / NACLIP): softmax over queries, synonym max, area rule, threshold."""
    probs = torch.softmax(logits * scale, 0)
    C = int(q2c.max()) + 1
    probs = probs.new_full((C, *probs.shape[1:]), float('-inf')).scatter_reduce(
        0, q2c.view(-1, 1, 1).expand_as(probs), probs, reduce='amax')
    if area_thd is not None:
        hard = F.one_hot(probs.argmax(0), C).sum((0, 1)).float()
        fg = torch.ones(C, dtype=torch.bool)
        fg[bg] = False
        probs = probs * ((hard > area_thd * hard[fg].sum()) | ~fg).float().view(-1, 1, 1)
    top, label = probs.max(0, keepdim=True)
    label[top < prob_thd] = bg
    if renormalize:
        probs = probs / probs.sum(0, keepdim=True)
    return probs, label


def make(tiny_clip, mode, **kw):
    kw.setdefault('slide_crop', 48)
    kw.setdefault('slide_stride', 24)
    method = tiny_method_config(mode, len(tiny_clip.vit_tower().blocks))
    return OVSegmentor(OVCLIPViT(tiny_clip, method), dict(vocabulary=VOCAB, templates='none'),
                       return_probs=True, **kw).eval()


@pytest.mark.parametrize('align_corners', [False, True])
@pytest.mark.parametrize('src,dst', [((7, 11), (19, 5)), ((16, 16), (37, 53)), ((30, 9), (30, 20)), ((448, 597), (480, 640))])
def test_resize_region_is_interpolate_and_split_invariant(src, dst, align_corners):
    x = torch.randn(3, *src)
    whole = F.interpolate(x[None], size=dst, mode='bilinear', align_corners=align_corners)[0]
    mine = resize_region(x, src, dst, (0, 0, *dst), align_corners=align_corners)
    assert torch.allclose(mine, whole, atol=1e-6, rtol=0)
    region = (3, 2, dst[0] - 1, dst[1] - 2)  # from only the source rows/columns it reads
    ya, yb = source_span(src[0], dst[0], region[0], region[2], align_corners=align_corners)
    xa, xb = source_span(src[1], dst[1], region[1], region[3], align_corners=align_corners)
    part = resize_region(x[:, ya:yb, xa:xb], src, dst, region, offset=(ya, xa), align_corners=align_corners)
    assert torch.equal(part, mine[:, region[0]:region[2], region[1]:region[3]])


@pytest.mark.parametrize('src,dst', [((9, 13), (20, 31)), ((9, 13), (9, 31)), ((9, 13), (20, 13))])
def test_resize_region_a_few_maps_at_a_time_is_bit_identical(monkeypatch, src, dst):
    """Maps resized a slice at a time into the output (both axes, columns only, rows only; 4-d input): bit for bit
    what one slice gives, row-major."""
    from ovdense.models.utils import chunked
    x = torch.randn(2, 7, *src)
    region = (1, 2, dst[0] - 1, dst[1])
    whole = resize_region(x, src, dst, region)
    monkeypatch.setattr(chunked, '_SLICE_BYTES', (dst[0] - 2) * (dst[1] - 2) * 4 * 3)  # 3 maps: 14 in 5 slices
    sliced = resize_region(x, src, dst, region)
    assert sliced.shape == (2, 7, dst[0] - 2, dst[1] - 2) and sliced.is_contiguous()
    assert torch.equal(sliced, whole)
    assert resize_region(x[:, :0], src, dst, region).shape == (2, 0, dst[0] - 2, dst[1] - 2)


def _rss_rise(fn):
    """(bytes the process's resident memory rose to above where it was while ``fn`` ran, fn's result); Linux."""
    def kib(key):
        with open('/proc/self/status') as f:
            return next(int(line.split()[1]) for line in f if line.startswith(key + ':'))
    base = kib('VmRSS')
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')  # the peak (VmHWM) restarts from the current size
    out = fn()
    return (kib('VmHWM') - base) * 1024, out


@pytest.mark.parametrize('out_hw', [(61, 83), (50, 70)])  # resized to the output, and not (the identity)
def test_grid_stitching_equals_window_by_window(out_hw):
    """Windows of 24 px every 16 px over 50 x 70 (the last ones pulled back, 1-3 overlapping a pixel), padded to
    28 x 30: the two products of the grid path give the per-window recipe (each window's logits upsampled, summed,
    divided by the count, resized) on the whole image and on a region that reads only some windows."""
    from ovdense.models.segmentors.ov_segmentor import _Window, _window_grid
    from ovdense.models.utils import slide_windows
    g = torch.Generator().manual_seed(4)
    boxes = slide_windows(50, 70, 24, 16)
    windows = [_Window(b, torch.randn(6, 4, 5, generator=g), (28, 30), (2, 3)) for b in boxes]
    text = torch.randn(5, 6, generator=g)
    grid = _window_grid(windows)
    assert grid is not None and len(grid[0]) * len(grid[1]) == len(boxes) == 12
    for region in [(0, 0, *out_hw), (3, 40, 20, out_hw[1] - 1)]:
        ya, yb = source_span(50, out_hw[0], region[0], region[2])
        xa, xb = source_span(70, out_hw[1], region[1], region[3])
        src = OVSegmentor.window_logits(windows, text, (ya, xa, yb, xb))
        recipe = resize_region(src, (50, 70), out_hw, region, offset=(ya, xa))
        ours = OVSegmentor._grid_logits(grid, text, (50, 70), out_hw, region)
        assert ours.shape == recipe.shape and torch.allclose(ours, recipe, atol=1e-5, rtol=0)
    assert _window_grid(windows[:-1]) is None  # not every row with every column: window by window
    assert _window_grid([w._replace(pad=(0, 0)) if i == 3 else w for i, w in enumerate(windows)]) is None


@pytest.mark.skipif(not __import__('os').path.exists('/proc/self/clear_refs'), reason='reads Linux /proc peak RSS')
def test_resize_region_temporaries_stay_small():
    """56 maps to 480x640 (69 MB): the peak rises by less than twice the output (1.2-1.6x here; all maps at once:
    3x)."""
    x = torch.randn(56, 240, 320)
    rise, out = _rss_rise(lambda: resize_region(x, (240, 320), (480, 640), (0, 0, 480, 640)))
    assert rise < 2 * out.numel() * 4, rise / (out.numel() * 4)


@pytest.mark.skipif(not __import__('os').path.exists('/proc/self/clear_refs'), reason='reads Linux /proc peak RSS')
def test_reducer_scales_a_few_queries_at_a_time():
    """56 queries of 21 classes at 480x640 (69 MB of logits): the update's peak stays below the logits' size (all
    queries scaled at once: 1.4x it), and its result is the full recipe's."""
    q2c = torch.arange(21).repeat_interleave(torch.tensor([3] * 14 + [2] * 7))  # 56 queries
    logits = torch.randn(56, 480, 640, generator=torch.Generator().manual_seed(0))
    red = SoftmaxReducer((480, 640), 40.0)
    rise, _ = _rss_rise(lambda: red.update(logits, q2c, 0, 21))
    assert rise < logits.numel() * 4, rise / (logits.numel() * 4)
    z = logits[:, :8, :8] * 40.0
    cl = torch.full((21, 8, 8), float('-inf')).scatter_reduce(0, q2c.view(-1, 1, 1).expand(56, 8, 8), z, 'amax')
    assert torch.equal(red.label[:8, :8], cl.argmax(0))
    assert torch.allclose(red.top_prob()[:8, :8], torch.softmax(z, 0).amax(0), atol=1e-6)  # the winner's query


@pytest.mark.parametrize('scale, bias', [(40.0, 0.0), (10.0, -2.5), (-3.0, 0.0)])
def test_class_logits_equal_the_scaled_scatter_max_bit_for_bit(scale, bias):
    """Consecutive synonyms (maxed first, then scaled), classes without queries in the chunk and queries in any order
    (scattered): each class's max over ``scale * l + bias`` of its queries, exactly."""
    g = torch.Generator().manual_seed(3)
    q2c = torch.tensor([2, 2, 2, 3, 5, 5, 6, 7, 7])  # class 4 of the chunk 2..7 has no query
    logits = torch.randn(9, 11, 13, generator=g)
    z = logits * scale + bias
    ref = torch.full((6, 11, 13), float('-inf')).scatter_reduce(0, (q2c - 2).view(-1, 1, 1).expand_as(z), z, 'amax')
    red = SigmoidReducer((11, 13), scale, bias)
    assert torch.equal(red.class_logits(logits, q2c, 2, 8, bias), ref)
    perm = torch.randperm(9, generator=g)
    assert torch.equal(red.class_logits(logits[perm], q2c[perm], 2, 8, bias), ref)


@pytest.mark.parametrize('hw', [(41, 37), (5, 7), (1, 19), (64, 96)])
def test_pamr_equals_stacked_reference(hw):
    """Odd sizes, images smaller than a dilation (every neighbour clamped), a batch of 2 with different images."""
    g = torch.Generator().manual_seed(1)
    image, scores = torch.randn(2, 3, *hw, generator=g), torch.randn(2, 5, *hw, generator=g)
    pamr = PAMR(10, (8, 16))
    ours, ref = pamr(image, scores), _stacked_pamr(image, scores, 10, (8, 16))
    assert ours.shape == ref.shape and torch.allclose(ours, ref, atol=1e-5, rtol=0)
    aff = pamr.affinity(image)  # computed once, reused for another chunk of scores
    assert torch.allclose(pamr.refine(scores[:, :2], aff), ref[:, :2], atol=1e-5, rtol=0)
    mine = scores.clone()
    assert pamr.refine(mine, aff, inplace=True) is mine and torch.equal(mine, pamr.refine(scores, aff))
    with pytest.raises(ValueError, match='affinities of shape'):
        pamr.refine(scores, aff[:1])


def test_pamr_refines_maps_in_cache_sized_groups(monkeypatch):
    """Maps too many for the cache are refined a group at a time through all iterations: the same result, two
    buffers per image alternated (no allocation per iteration)."""
    from ovdense.models.utils import pamr as pamr_module
    g = torch.Generator().manual_seed(2)
    image, scores = torch.randn(2, 3, 23, 29, generator=g), torch.randn(2, 19, 23, 29, generator=g)
    pamr = PAMR(10, (8, 16))
    groups, buffers = [], set()  # maps of each step, the memory each step reads and writes
    step = pamr_module._step

    def recorded(x, aff, dy, dx, out):
        groups.append(x.shape[0])
        assert out.shape == x.shape and out.data_ptr() != x.data_ptr()
        buffers.update((x.untyped_storage().data_ptr(), out.untyped_storage().data_ptr()))
        return step(x, aff, dy, dx, out)

    monkeypatch.setattr(pamr_module, '_step', recorded)
    whole = pamr(image, scores)
    assert groups == [19] * 10 * 2 and len(buffers) == 2  # fits the default group: one group per image
    plane = (23 + 32) * (29 + 32) * 4
    monkeypatch.setattr(pamr_module, '_GROUP_BYTES', plane * 9)  # 9 maps -> whole multiples of 4: groups of 8
    groups.clear()
    assert torch.allclose(pamr(image, scores), whole, atol=1e-6, rtol=0)
    assert groups == ([8] * 10 + [8] * 10 + [3] * 10) * 2
    monkeypatch.setattr(pamr_module, '_GROUP_BYTES', plane * 2)  # fewer than 4 fit: groups of 4 anyway
    groups.clear()
    assert torch.allclose(pamr(image, scores), whole, atol=1e-6, rtol=0)
    assert groups == ([4] * 10 * 4 + [3] * 10) * 2
    assert torch.allclose(whole, _stacked_pamr(image, scores, 10, (8, 16)), atol=1e-5, rtol=0)


def test_pamr_refuses_repeated_dilations():
    with pytest.raises(ValueError, match='distinct positive'):
        PAMR(10, (8, 8))


def test_pamr_on_a_grown_crop_equals_whole_image():
    g = torch.Generator().manual_seed(2)
    image, scores = torch.randn(1, 3, 90, 70, generator=g), torch.randn(1, 4, 90, 70, generator=g)
    pamr = PAMR(3, (2, 4))
    whole = pamr(image, scores)
    y1, x1, y2, x2 = 30, 20, 50, 45
    h = pamr.halo
    a, b, c, d = max(y1 - h, 0), max(x1 - h, 0), y2 + h, x2 + h
    part = pamr(image[..., a:c, b:d], scores[..., a:c, b:d])
    assert torch.allclose(part[..., y1 - a:y2 - a, x1 - b:x2 - b], whole[..., y1:y2, x1:x2], atol=1e-6)
    short = pamr(image[..., a + 1:c, b:d], scores[..., a + 1:c, b:d])  # one pixel less than the halo
    assert not torch.allclose(short[..., y1 - a - 1:y2 - a - 1, x1 - b:x2 - b], whole[..., y1:y2, x1:x2], atol=1e-6)


def test_class_chunks_keep_synonyms_together():
    q2c = VOCAB.query_to_class  # [0, 1, 1, 1, 2, 3, 3]
    assert class_chunks(q2c, 2) == [(0, 1, 0, 1), (1, 4, 1, 2), (4, 5, 2, 3), (5, 7, 3, 4)]
    assert class_chunks(q2c, 5) == [(0, 5, 0, 3), (5, 7, 3, 4)]
    assert class_chunks(q2c, 100) == [(0, 7, 0, 4)]
    with pytest.raises(ValueError, match='non-decreasing'):
        class_chunks(torch.tensor([0, 1, 0]), 2)


def test_plan_fits_the_budget():
    q2c = torch.arange(1203)
    plan = plan_chunks(q2c, (1024, 2048), budget=1 << 30, halo=176, bytes_per_px=128, bytes_per_query_px=20)
    th, tw = plan.tile
    ext = min(th + 352, 1024) * min(tw + 352, 2048)
    assert ext * 128 <= 1 << 29 + 1  # per-pixel buffers of a grown tile: half the budget
    assert max(b - a for a, b, _, _ in plan.chunks) * ext * 20 <= 1 << 29
    assert plan.chunks[0][0] == 0 and plan.chunks[-1][1] == 1203
    thin = plan_chunks(q2c[:5], (3, 5000), budget=1 << 20)
    assert thin.tile[0] == 3 and thin.tile[1] > 32  # a thin image gets wide tiles


def test_reducer_equals_softmax_of_everything():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(7, 5, 6, generator=g)
    q2c = VOCAB.query_to_class
    red = SoftmaxReducer((5, 6), 40.0)
    chunks = class_chunks(q2c, 2)
    for q0, q1, c0, c1 in chunks:
        red.update(logits[q0:q1], q2c[q0:q1], c0, c1)
    probs, label = _plain_postprocess(logits, q2c, scale=40.0)
    assert torch.equal(red.label, label[0])
    got = torch.cat([red.probs(logits[q0:q1], q2c[q0:q1], c0, c1) for q0, q1, c0, c1 in chunks])
    assert torch.allclose(got, probs, atol=1e-6)


@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('knobs', [
    dict(),
    dict(pamr=dict(num_iter=3, dilations=(2, 4)), renormalize=True, prob_thd=0.3),
    dict(area_thd=0.2, prob_thd=0.27),
])
def test_chunked_equals_one_piece(tiny_clip, mode, knobs):
    """Tiles of 7 px and chunks of 2 queries (neither divides the image nor the 7 queries), batch of 2
    images of different valid sizes, output size different from the input (resize)."""
    x = random_images(2, 80, 100, seed=5)
    metas = [dict(img_shape=(80, 100), ori_shape=(61, 83)), dict(img_shape=(70, 90), ori_shape=(95, 117))]
    whole = make(tiny_clip, mode, **knobs).inference(x, metas, return_raw=True)
    pieces = make(tiny_clip, mode, tile_size=7, chunk_queries=2, **knobs).inference(x, metas)
    budget = make(tiny_clip, mode, memory_budget=200_000, **knobs)
    plan = plan_chunks(VOCAB.query_to_class, (95, 117), budget=budget.memory_budget)
    assert len(plan.chunks) > 1 and plan.tile != (95, 117)  # the budget really cuts
    small = budget.inference(x, metas)
    text = make(tiny_clip, mode).class_embeddings().queries
    for w, p, b, img, meta in zip(whole, pieces, small, x, metas):
        assert torch.equal(w['label'], p['label']) and torch.equal(w['label'], b['label'])
        assert torch.allclose(w['probs'], p['probs'], atol=1e-6) and torch.allclose(w['probs'], b['probs'], atol=1e-6)
        # one piece is the plain full-tensor recipe
        h, wd = meta['img_shape']
        seg = make(tiny_clip, mode, **knobs)
        logits = F.interpolate(seg.encode_image(img[:, :h, :wd], text)[None], size=meta['ori_shape'], mode='bilinear')
        assert torch.allclose(w['logits_pre_pamr'], logits[0], atol=1e-5)
        if seg.pamr is not None:
            guide = F.interpolate(img[None, :, :h, :wd], size=meta['ori_shape'], mode='bilinear')
            logits = _stacked_pamr(guide, logits, seg.pamr.num_iter, seg.pamr.dilations)
        probs, label = _plain_postprocess(logits[0], VOCAB.query_to_class, scale=seg.logit_scale,
                                          area_thd=seg.area_thd, prob_thd=seg.prob_thd, renormalize=seg.renormalize)
        assert torch.allclose(w['probs'], probs, atol=1e-4)  # float-order differences x logit scale 40
        assert (w['label'] != label).float().mean() < 1e-3  # ties at float rounding only


def test_area_rule_really_removes_a_class_in_pieces(tiny_clip):
    seg = make(tiny_clip, 'clearclip', area_thd=0.3, tile_size=9, chunk_queries=3)
    x = random_images(1, 64, 64, seed=7)
    meta = [dict(img_shape=(64, 64), ori_shape=(64, 64))]
    plain = make(tiny_clip, 'clearclip').inference(x, meta)[0]
    counts = torch.bincount(plain['label'].flatten(), minlength=4)
    small = [c for c in range(1, 4) if 0 < counts[c] <= 0.3 * counts[1:].sum()]
    assert small, 'the case must have a small foreground class for the rule to act on'
    res = seg.inference(x, meta)[0]
    for c in small:
        assert not (res['label'] == c).any() and res['probs'][c].abs().sum() == 0
    # the kept classes keep their probabilities: the softmax over all queries is the first round's
    kept = [c for c in range(4) if c not in small]
    assert torch.allclose(res['probs'][kept], plain['probs'][kept], atol=1e-6, rtol=0)


def test_probs_stride_takes_every_sth_pixel(tiny_clip):
    x = random_images(1, 64, 80, seed=9)
    meta = [dict(img_shape=(64, 64), ori_shape=(50, 71))]
    full = make(tiny_clip, 'naclip', pamr=dict(num_iter=2, dilations=(1, 2))).inference(x, meta)[0]
    strided = make(tiny_clip, 'naclip', pamr=dict(num_iter=2, dilations=(1, 2)), probs_stride=3,
                   tile_size=11, chunk_queries=2).inference(x, meta)[0]
    assert strided['probs'].shape == (4, 17, 24)
    assert torch.allclose(strided['probs'], full['probs'][:, ::3, ::3], atol=1e-6)
    assert torch.equal(strided['label'], full['label'])


@pytest.mark.parametrize('shape', [(1, 300), (3, 5000), (200, 2), (5, 7)])
@pytest.mark.parametrize('slide_crop', [48, 0])
def test_thin_images_segment(tiny_clip, shape, slide_crop):
    seg = make(tiny_clip, 'naclip', slide_crop=slide_crop, pamr=dict(num_iter=2, dilations=(4, 8)), renormalize=True)
    x = random_images(1, *shape, seed=11)
    res = seg.inference(x, [dict(img_shape=shape, ori_shape=shape)])[0]
    assert res['label'].shape == (1, *shape) and res['probs'].shape == (4, *shape)
    assert torch.allclose(res['probs'].sum(0), torch.ones(shape), atol=1e-5)
    # the thin image is padded like a short window, so it matches the padded image cropped back
    if shape[0] < 16 <= shape[1] and slide_crop == 0:
        pad = 16 - shape[0]
        padded = F.pad(x, (0, 0, pad // 2, pad - pad // 2))
        text = seg.class_embeddings().queries
        logits = seg.patch_logits(padded, text)
        ref = F.interpolate(logits, size=padded.shape[-2:], mode='bilinear')[..., pad // 2:pad // 2 + shape[0], :]
        assert torch.allclose(seg.encode_image(x[0], text), ref[0], atol=1e-5)


@pytest.mark.parametrize('flip', [None, 'horizontal', 'vertical'])
def test_chunked_postprocess_equals_mmseg(tiny_clip, flip):
    """The trained heads' post-processing in tiles x class chunks gives mmseg's labels and logits."""
    from mmseg.models.segmentors import EncoderDecoder
    from mmseg.structures import SegDataSample

    from ovdense.models.utils.chunked import ChunkedPostprocessMixin

    class Plain(EncoderDecoder):
        def __init__(self, test_cfg):  # only what postprocess_result reads
            torch.nn.Module.__init__(self)
            self.test_cfg, self.align_corners = test_cfg, False

    class Chunked(ChunkedPostprocessMixin, Plain):
        pass

    g = torch.Generator().manual_seed(4)
    logits = torch.randn(2, 13, 24, 30, generator=g)

    def samples():
        meta = dict(ori_shape=(53, 71), img_shape=(21, 27), padding_size=[1, 2, 0, 3], flip=flip is not None,
                    flip_direction=flip)
        return [SegDataSample(metainfo=meta), SegDataSample(metainfo=dict(meta, padding_size=[0, 0, 0, 0],
                                                                             ori_shape=(24, 30)))]
    ref = Plain(dict()).postprocess_result(logits, samples())
    got = Chunked(dict(return_logits=True, memory_budget=30_000)).postprocess_result(logits, samples())
    lean = Chunked(dict()).postprocess_result(logits, samples())
    for r, c, n in zip(ref, got, lean):
        assert torch.equal(c.pred_sem_seg.data, n.pred_sem_seg.data) and 'seg_logits' not in n
        assert torch.allclose(c.seg_logits.data, r.seg_logits.data, atol=1e-5)
        assert (c.pred_sem_seg.data != r.pred_sem_seg.data).float().mean() < 1e-3  # float-rounding ties only


def test_pamr_without_the_compiled_extension_says_so_and_refines_the_same(monkeypatch):
    """A checkout used without building ovdense._ext: the shifted sums, with a warning naming the fix."""
    from ovdense import ext
    g = torch.Generator().manual_seed(3)
    image, scores = torch.randn(1, 3, 21, 26, generator=g), torch.randn(1, 11, 21, 26, generator=g)
    pamr = PAMR(10, (8, 16))
    ours = pamr(image, scores)
    monkeypatch.setattr(ext, '_ext', None)
    monkeypatch.setattr(ext, '_EXT_ERROR', ImportError('no module named ovdense._ext'), raising=False)
    with pytest.warns(UserWarning, match='ovdense._ext is not built.*no-build-isolation -e'):
        torchs = pamr(image, scores)
    assert torch.allclose(torchs, ours, atol=1e-5, rtol=0)
