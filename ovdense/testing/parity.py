"""Reproduce a golden case of a reference implementation (``../shared/golden``) with ovdense.

Segmentation cases (SCLIP, NACLIP, ClearCLIP, MaskCLIP) are run through the shipped config of that
reference's protocol, with the golden tiny CLIP swapped in: the config's pipeline, vocabulary,
templates, backbone mode and protocol knobs are all checked against the reference's tensors.
"""
from __future__ import annotations

import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[2]
TOL = 1e-4

# reference config file (as recorded in the case) -> our config
SEG_CONFIGS = {
    ('sclip', 'configs/cfg_voc21.py'): 'configs/sclip/sclip_vit-b16_voc21-336.py',
    ('sclip', 'configs/cfg_context59.py'): 'configs/sclip/sclip_vit-b16_context59-336.py',
    ('naclip', 'configs/cfg_voc21.py'): 'configs/naclip/naclip_vit-b16_voc21-336.py',
    ('naclip', 'configs/cfg_context59.py'): 'configs/naclip/naclip_vit-b16_context59-336.py',
    ('clearclip', 'configs/cfg_voc21.py'): 'configs/clearclip/clearclip_vit-b16_voc21-448.py',
    ('clearclip', 'configs/cfg_context59.py'): 'configs/clearclip/clearclip_vit-b16_context59-448.py',
    ('maskclip', 'configs/maskclip/maskclip_vit16_512x512_voc12aug_20.py'): 'configs/maskclip/maskclip_vit-b16_voc20-512.py',
    ('maskclip', 'configs/maskclip/maskclip_vit16_520x520_pascal_context_59.py'):
        'configs/maskclip/maskclip_vit-b16_context59-520x520.py',
}
PROXY_CONFIGS = {'configs/cfg_voc21.py': 'configs/proxyclip/proxyclip_vit-b16_voc21-336.py'}
# the reference's VFM (hub entry family, patch size) -> the timm architecture that holds its weights
PROXY_VFMS = {('dino', 8): 'vit_base_patch8_224.dino', ('dino', 16): 'vit_base_patch16_224.dino'}
CLIPSELF_CONFIG = 'configs/clipself/clipself_vit-b16_coco-grid-1024.py'
EVA_CLIPSELF_CONFIG = 'configs/clipself/clipself_eva02-b16_coco-grid-1024.py'
DENSECLIP_CONFIG = 'configs/denseclip/denseclip_vit-b16_ade20k-640.py'
DECLIP_CONFIG = 'configs/declip/declip_eva02-b16_coco-grid-560.py'
CATSEG_CONFIG = 'configs/catseg/catseg_vit-b16_coco-stuff171-384.py'
# DeCLIP's ``--use_vfm`` (DINOv2 hub entries with registers) -> the timm architecture that holds its weights
DECLIP_VFMS = {'dinov2-B': 'vit_base_patch14_reg4_dinov2', 'dinov2-L': 'vit_large_patch14_reg4_dinov2'}


@dataclass
class Check:
    """One compared quantity: ``diff`` is the max absolute difference (or mismatch count; ``what`` says which)."""
    name: str
    diff: float
    tol: float = TOL
    what: str = 'max|diff|'

    @property
    def ok(self) -> bool:
        return self.diff <= self.tol


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    if a.shape != b.shape:
        return float('inf')
    return (a.float() - b.float()).abs().max().item()


def run_case(case_path: str | Path) -> list[Check]:
    """Run one golden case and compare every stored tensor ovdense can produce.

    Raises:
        NotImplementedError: the case's reference has no ovdense implementation yet.
        FileNotFoundError: the case or the golden tiny CLIP is missing.
    """
    case_path = Path(case_path)
    case = torch.load(case_path, map_location='cpu', weights_only=True)
    golden_dir = case_path.parent.parent
    ref = case['reference']
    key = (ref, case.get('config_file'))
    if key in SEG_CONFIGS:
        return _run_segmentation(case, golden_dir, REPO / SEG_CONFIGS[key])
    if ref == 'proxyclip' and case.get('config_file') in PROXY_CONFIGS:
        return _run_proxyclip(case, golden_dir, REPO / PROXY_CONFIGS[case['config_file']])
    if ref == 'clipself':
        return _run_clipself(case, golden_dir, REPO / CLIPSELF_CONFIG)
    if ref == 'denseclip':
        return _run_denseclip(case, golden_dir, REPO / DENSECLIP_CONFIG)
    if ref == 'clipself_eva':
        return _run_eva_clipself(case, case_path.parent, REPO / EVA_CLIPSELF_CONFIG)
    if ref == 'declip':
        return _run_declip(case, golden_dir, REPO / DECLIP_CONFIG)
    if ref == 'catseg':
        return _run_catseg(case, golden_dir, REPO / CATSEG_CONFIG)
    if ref in ('scclip', 'resclip'):
        return (_run_scclip if ref == 'scclip' else _run_resclip)(case, golden_dir, _protocol_config(case))
    raise NotImplementedError(f"no ovdense parity runner for reference '{ref}' ({case.get('config_file')}) yet; "
                              f"implemented: {sorted({r for r, _ in SEG_CONFIGS} | {'catseg', 'clipself', 'clipself_eva', 'declip', 'denseclip', 'proxyclip', 'scclip', 'resclip'})}")


def _run_segmentation(case: dict, golden_dir: Path, config: Path) -> list[Check]:
    import mmcv
    from mmengine.config import Config
    from mmengine.dataset import Compose
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import ovdense.models  # noqa: F401
    from ovdense.models.utils import slide_windows

    cfg = Config.fromfile(str(config))
    init_default_scope('mmseg')
    cfg.model.backbone.clip = dict(config_file=str(golden_dir / 'tiny_clip_config.json'),
                                   checkpoint=str(golden_dir / f"tiny_clip_seed{case['model_seed']}.safetensors"))
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.eval()
    checks: list[Check] = []

    # vocabulary and templates from the config must be the reference's
    vocab = model.vocabulary
    q2c = case.get('query_to_class', torch.arange(len(case['class_names'])))
    checks.append(Check('vocabulary_queries', float(vocab.queries != list(case['class_names'])), 0))
    checks.append(Check('vocabulary_query_to_class', float(not torch.equal(vocab.query_to_class, q2c)), 0))
    checks.append(Check('templates', float(list(model.text_encoder.prompt_templates()) != list(case['templates'])), 0))
    text = model.class_embeddings().queries
    checks.append(Check('text_embeddings', _max_diff(text, case['text_embeddings'])))

    # the config's test pipeline + data preprocessor must give the reference's input tensor
    pipeline = Compose([t for t in cfg.test_pipeline if t['type'] != 'LoadAnnotations'])
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / 'image.png')
        mmcv.imwrite(case['image_rgb_uint8'].numpy()[:, :, ::-1], path)
        packed = pipeline(dict(img_path=path))
        data = model.data_preprocessor({k: [v] for k, v in packed.items()}, False)
    inputs, meta = data['inputs'], data['data_samples'][0].metainfo
    checks.append(Check('input', _max_diff(inputs, case['input'])))

    bb = model.backbone
    with torch.no_grad():
        for name, x in [('crop224', case['input'][:, :, :224, :224]),
                        ('shared224', torch.load(golden_dir / 'shared_input_224.pt', weights_only=True)['input']),
                        ('nonsquare', case['nonsquare_input'])]:
            out = bb.forward_tokens(x)
            h, w = out.grid
            gold = case[f'{name}_dense_features']
            tokens = out.tokens
            mine = (tokens[:, 1:].transpose(1, 2).reshape(1, -1, h, w) if gold.dim() == 4 else
                    tokens[:, 1:] if gold.shape[1] == h * w else tokens)
            checks.append(Check(f'{name}_dense_features', _max_diff(mine, gold)))
            checks.append(Check(f'{name}_patch_logits', _max_diff(model.patch_logits(x, text),
                                                                  case[f'{name}_patch_logits'])))
        from ovdense.models.backbones import interpolate_pos_embed
        pos = interpolate_pos_embed(bb.tower.positional_embedding, (21, 28), method=bb.pos_interp)
        checks.append(Check('nonsquare_pos_embed', _max_diff(pos[None], case['nonsquare_pos_embed'])))
    if 'slide_windows_y1x1y2x2' in case and model.slide_crop > 0:
        win = torch.tensor(slide_windows(*case['input'].shape[-2:], model.slide_crop, model.slide_stride))
        checks.append(Check('slide_windows', float(not torch.equal(win, case['slide_windows_y1x1y2x2'])), 0))

    res = model.inference(case['input'], [dict(img_shape=case['input'].shape[-2:], ori_shape=meta['ori_shape'])],
                          return_probs=True, return_raw=True)[0]
    checks.append(Check('seg_logits_raw', _max_diff(res['logits'][None], case['seg_logits_raw'])))
    if 'seg_logits_pre_pamr' in case:
        checks.append(Check('seg_logits_pre_pamr', _max_diff(res['logits_pre_pamr'][None], case['seg_logits_pre_pamr'])))
    gold = case['seg_logits']
    checks.append(Check('seg_logits', _max_diff(res['probs'], gold[0] if gold.dim() == 4 else gold)))
    checks.append(Check('pred_label_mismatches', float((res['label'] != case['pred_label']).sum()), 0))
    return checks


def _run_proxyclip(case: dict, golden_dir: Path, config: Path) -> list[Check]:
    """ProxyCLIP: our shipped config of the case's protocol with the case's CLIP and VFM swapped in (files
    named by the case, relative to the golden root; the VFM's architecture from its ``vfm_config``)."""
    import mmcv
    from mmengine.config import Config
    from mmengine.dataset import Compose
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import ovdense.models  # noqa: F401
    from ovdense.clip.vfm import dino_pos_embed
    from ovdense.models.backbones import interpolate_pos_embed
    from ovdense.models.utils import slide_windows

    proto, vcfg = case['protocol'], case['vfm_config']
    key = (proto['vfm_model'], proto['vfm_patch_size'])
    if key not in PROXY_VFMS:
        raise NotImplementedError(f'no timm architecture for the reference VFM {key}; known: {sorted(PROXY_VFMS)}')
    cfg = Config.fromfile(str(config))
    init_default_scope('mmseg')
    cfg.model.backbone.clip = dict(config_file=str(golden_dir / 'tiny_clip_config.json'),
                                   checkpoint=str(golden_dir / case['clip_weights']))
    cfg.model.backbone.method.proxy = dict(
        model_name=PROXY_VFMS[key], checkpoint=str(golden_dir / case['vfm_weights']),
        model_kwargs=dict(embed_dim=vcfg['embed_dim'], depth=vcfg['depth'], num_heads=vcfg['num_heads'],
                          mlp_ratio=vcfg['mlp_ratio'], qkv_bias=vcfg['qkv_bias'], img_size=vcfg['img_size']))
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.eval()
    bb = model.backbone
    m = bb.method
    checks: list[Check] = []
    add = lambda name, a, b: checks.append(Check(name, _max_diff(a, b)))  # noqa: E731
    knobs = dict(logit_scale=model.logit_scale, prob_thd=model.prob_thd, beta=m.beta, gamma=m.gamma,
                 slide_crop=model.slide_crop, slide_stride=model.slide_stride,
                 window_pad_multiple=model.window_pad_multiple, vfm_patch_size=m.proxy.patch_size,
                 clip_patch_size=bb.patch_size)
    checks.append(Check('protocol_knobs', float(sum(knobs[k] != proto[k] for k in knobs)), 0))
    vocab = model.vocabulary
    checks.append(Check('vocabulary_queries', float(vocab.queries != list(case['class_names'])), 0))
    checks.append(Check('vocabulary_query_to_class', float(not torch.equal(vocab.query_to_class, case['query_to_class'])), 0))
    checks.append(Check('templates', float(list(model.text_encoder.prompt_templates()) != list(case['templates'])), 0))
    text = model.class_embeddings().queries
    add('text_embeddings', text, case['text_embeddings'])

    pipeline = Compose([t for t in cfg.test_pipeline if t['type'] != 'LoadAnnotations'])
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / 'image.png')
        mmcv.imwrite(case['image_rgb_uint8'].numpy()[:, :, ::-1], path)
        data = model.data_preprocessor({k: [v] for k, v in pipeline(dict(img_path=path)).items()}, False)
    inputs, meta = data['inputs'], data['data_samples'][0].metainfo
    add('input', inputs, case['input'])
    stats = bb.clip.image_stats
    add('vfm_input', m.proxy_input(case['input'], *stats), case['vfm_input'])
    windows = slide_windows(*inputs.shape[-2:], model.slide_crop, model.slide_stride)
    checks.append(Check('slide_windows', float(not torch.equal(torch.tensor(windows), case['slide_windows_y1x1y2x2'])), 0))

    flips: list[tuple[torch.Tensor, torch.Tensor]] = []  # (window proxy features, mask entries decided otherwise)
    with torch.no_grad():
        for i, (y1, x1, y2, x2) in enumerate(windows):
            x = case['input'][:, :, y1:y2, x1:x2]
            feats = m.proxy.patch_features(m.proxy_input(x, *stats))
            add(f'window{i}_vfm_patch_features', feats, case['vfm_patch_features'][i:i + 1])
            e = F.normalize(feats.flatten(2), dim=1)
            add(f'window{i}_similarity_mean', torch.einsum('bcm,bcn->bmn', e, e).mean().double(),
                case['similarity_mean'][i])
            sim = m.affinity(feats)[0]
            gold = case['window_dense_features'][i:i + 1]
            if i == 0:  # the reference's attention: its mask decisions are known
                idx = ((sim >= 0) != (case['window0_proxy_attn'] != 0)).view(-1).nonzero()[:, 0]
            else:
                idx = _proxy_flips(m, bb, x, feats, sim, gold)
            checks.append(_mask_flip_check(f'window{i}', sim, idx))
            flips.append((feats[0], idx if idx is not None else _no_flips()))
            with _given_decisions(m, flips[-1:]):  # the continuous tensors, given the reference's decisions
                out = bb.forward_tokens(x)
                add(f'window{i}_dense_features', out.tokens, gold)
                add(f'window{i}_patch_logits', model.patch_logits(x, text), case['window_patch_logits'][i:i + 1])
                if i == 0:
                    attn = m.attention(feats)[0]
                    add('window0_proxy_attn', attn, case['window0_proxy_attn'])
                    tokens, grid = bb.embed(x)
                    for blk in bb.tower.blocks[:-1]:
                        tokens = bb.block(blk, tokens)
                    add('window0_last_block_input', tokens, case['window0_last_block_input'])
                    add('window0_last_block_output', m.proxy_block(bb, bb.tower.blocks[-1], tokens, grid, feats)[0],
                        case['window0_last_block_output'])
        g = (y2 - y1) // m.proxy.patch_size
        add('window_vfm_pos_embed', dino_pos_embed(m.proxy.model.pos_embed, (g, g)), case['window_vfm_pos_embed'])
        cg = (y2 - y1) // bb.patch_size
        add('window_clip_pos_embed', interpolate_pos_embed(bb.tower.positional_embedding, (cg, cg),
                                                           method=bb.pos_interp)[None], case['window_clip_pos_embed'])
        for name in ('crop224', 'shared224'):
            x = case['input'][:, :, :224, :224] if name == 'crop224' else torch.load(
                golden_dir / 'shared_input_224.pt', weights_only=True)['input']
            feats = m.proxy.patch_features(m.proxy_input(x, *stats))
            add(f'{name}_vfm_patch_features', feats, case[f'{name}_vfm_patch_features'])
            sim = m.affinity(feats)[0]
            idx = _proxy_flips(m, bb, x, feats, sim, case[f'{name}_dense_features'])
            checks.append(_mask_flip_check(name, sim, idx))
            with _given_decisions(m, [(feats[0], idx if idx is not None else _no_flips())]):
                add(f'{name}_dense_features', bb.forward_tokens(x).tokens, case[f'{name}_dense_features'])
                add(f'{name}_patch_logits', model.patch_logits(x, text), case[f'{name}_patch_logits'])

    with _given_decisions(m, flips):
        res = model.inference(inputs, [dict(img_shape=inputs.shape[-2:], ori_shape=meta['ori_shape'])],
                              return_probs=True, return_raw=True)[0]
    add('seg_logits_raw', res['logits'][None], case['seg_logits_raw'])
    add('seg_logits', res['probs'], case['seg_logits'])
    checks.append(Check('pred_label_mismatches', float((res['label'] != case['pred_label']).sum()), 0))
    return checks


# ProxyCLIP masks every proxy affinity below 0 (``A[A < 0] = -inf``). Entries within float rounding of 0 fall on
# either side with the CPU's kernels (one such flip moved a window's features by 7e-3 on another x86 machine), so
# the runner compares decisions first: each entry decided otherwise than the reference must lie within
# PROXY_MARGIN of the threshold (a check named ``..._mask_flips_<count>``, its value the largest |A| flipped), and
# the continuous tensors are then compared given the reference's decisions. Where the case stores the reference's
# attention (window 0) its decisions are read from it; elsewhere they are the entries near the threshold whose
# toggling reproduces the reference's features (none when ours already match).
PROXY_MARGIN = 1e-5  # float32 rounding of A is ~1e-6 here (cosines of a few hundred channels, times gamma = 3)


def _no_flips() -> torch.Tensor:
    return torch.zeros(0, dtype=torch.long)


def _mask_flip_check(prefix: str, sim: torch.Tensor, idx: torch.Tensor | None) -> Check:
    """``<prefix>_mask_flips_<count>``: the largest |A| among the entries decided otherwise (inf: none explains it)."""
    if idx is None:
        return Check(f'{prefix}_mask_flips_?', float('inf'), PROXY_MARGIN, 'max |A| flipped')
    margin = float(sim.reshape(-1)[idx].abs().max()) if idx.numel() else 0.0
    return Check(f'{prefix}_mask_flips_{idx.numel()}', margin, PROXY_MARGIN, 'max |A| flipped')


@contextmanager
def _given_decisions(m, flips: list[tuple[torch.Tensor, torch.Tensor]]):
    """``m.attention`` with the given mask decisions: for a batch element whose proxy features are those of an entry
    of ``flips`` (a window, recomputed in another batch), the listed mask entries toggled."""
    def attention(feats: torch.Tensor) -> torch.Tensor:
        sim = m.affinity(feats)
        keep = sim >= 0
        for b in range(feats.shape[0]):
            for f, idx in flips:
                if idx.numel() and f.shape == feats[b].shape and torch.allclose(f, feats[b], atol=1e-5):
                    flat = keep[b].view(-1)
                    flat[idx] = ~flat[idx]
        return torch.softmax(sim.masked_fill(~keep, float('-inf')), -1)

    m.attention = attention
    try:
        yield
    finally:
        del m.attention


def _proxy_flips(m, bb, x: torch.Tensor, feats: torch.Tensor, sim: torch.Tensor,
                 gold: torch.Tensor) -> torch.Tensor | None:
    """The mask entries (flat indices into ``sim`` (M, M)) to decide otherwise than ours so that the dense features
    of ``x`` match ``gold``: none if they already do, else a set of the entries within PROXY_MARGIN of the threshold:
    each alone (up to 64 of them), every pair (up to 16), then all of them; None when no such set matches."""
    import itertools

    def matches(idx: torch.Tensor) -> bool:
        with _given_decisions(m, [(feats[0], idx)]):
            return _max_diff(bb.forward_tokens(x).tokens, gold) <= TOL

    if matches(_no_flips()):
        return _no_flips()
    near = (sim.abs() < PROXY_MARGIN).view(-1).nonzero()[:, 0]
    singles = [near[[j]] for j in range(len(near))] if len(near) <= 64 else []
    pairs = [near[list(p)] for p in itertools.combinations(range(len(near)), 2)] if len(near) <= 16 else []
    for idx in [*singles, *pairs, near]:
        if matches(idx):
            return idx
    return None


def _clipself_inputs(case: dict, ds: dict, add) -> None:
    """The config's CLIPSelf transforms on the case's original image, checked with ``add``: the student input at
    the case's ``det_image_size``, the boxes normalised to it, and the teacher crops."""
    from PIL import Image

    from ovdense.datasets.clipself import resize_longest, resize_max_size
    image = Image.fromarray(case['image_rgb_uint8'].numpy())
    w, h = image.size
    size = int(case['det_image_size'])
    x, scale = resize_longest(image, size, mean=ds.get('mean', case['image_mean']), std=ds.get('std', case['image_std']))
    add('input', x[None], case['input'])
    boxes_px = case['fixed_boxes_normed_original'][case['boxes_order']] * torch.tensor([w, h, w, h])
    add('boxes_normed_input', boxes_px * scale / size, case['boxes_normed_input'])
    crops = torch.stack([resize_max_size(image.crop(tuple(b.tolist())), ds.crop_size) for b in boxes_px])
    add('teacher_crops', crops, case['teacher_crops'])


def _run_clipself(case: dict, golden_dir: Path, config: Path) -> list[Check]:
    """CLIPSelf: our config's model (golden CLIP swapped in) and transforms on the case's image and boxes."""
    import numpy as np
    import torch.nn.functional as F
    from mmengine.config import Config

    from ovdense.datasets.clipself import mask_to_grid
    from ovdense.models.backbones.clip_vit import interpolate_pos_embed
    from ovdense.models.pretrainers.clipself import (OVCLIPSelf, box_masks, mask_attn_features, mask_features,
                                         roi_features)

    cfg = Config.fromfile(str(config))
    model_cfg = {k: v for k, v in cfg.model.items() if k != 'type'}
    model_cfg['clip'] = dict(config_file=str(golden_dir / 'tiny_clip_config.json'),
                             checkpoint=str(golden_dir / 'tiny_clip_seed0.safetensors'))
    model = OVCLIPSelf(**model_cfg)
    model.init_weights()
    model.eval()
    ds = cfg.train_dataloader.dataset
    checks = []
    add = lambda name, a, b: checks.append(Check(name, _max_diff(a, b)))  # noqa: E731

    _clipself_inputs(case, ds, add)  # the case ran at its det_image_size; our config's input size is a knob
    x = case['input']  # downstream checks start from the reference input
    with torch.no_grad():
        dense = model.student.dense_features(x, normalize=True)
        add('dense_feature_map', dense, case['dense_feature_map'])
        gh, gw = dense.shape[-2:]
        add('rescaled_pos_embed_28x28', interpolate_pos_embed(
            model.student.tower.positional_embedding, (gh, gw), method=model.student.pos_interp),
            case['rescaled_pos_embed_28x28'])
        ref_boxes = case['boxes_normed_input']
        add('roi_features_v2_roialign', roi_features(dense, [ref_boxes]), case['roi_features_v2_roialign'])
        add('roi_features_v1_maskattn', mask_attn_features(model.student, x, [box_masks(ref_boxes, gh, gw)]),
            case['roi_features_v1_maskattn'])
        grid = torch.stack([mask_to_grid(m.numpy().astype(np.uint8), gh) for m in case['masks_full_res']])
        checks.append(Check('masks_feature_grid_mismatches',
                            float((grid != case['masks_feature_grid']).sum()), 0))
        ref_masks = case['masks_feature_grid']
        add('mask_pooled_features', mask_features(dense, [ref_masks]), case['mask_pooled_features'])
        add('mask_attn_pooled_features', F.normalize(mask_attn_features(model.student, x, [ref_masks]), dim=-1),
            case['mask_attn_pooled_features'])
        add('teacher_crop_features', model.teacher.encode_image(case['teacher_crops']), case['teacher_crop_features'])
        loss = model(x, [dict(boxes=ref_boxes, crops=case['teacher_crops'])], mode='loss')['loss_cosine']
        add('loss_cosine', loss, case['loss_cosine'])
    return checks


def _run_denseclip(case: dict, golden_dir: Path, config: Path) -> list[Check]:
    """DenseCLIP: our config's model with the case's tiny architecture and stored random parts."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import ovdense.models  # noqa: F401
    from ovdense.models.backbones.clip_vit import interpolate_pos_embed

    cfg = Config.fromfile(str(config))
    init_default_scope('mmseg')
    m = cfg.model
    m.backbone.clip = dict(config_file=str(golden_dir / 'tiny_clip_config.json'),
                           checkpoint=str(golden_dir / 'tiny_clip_seed0.safetensors'))
    m.backbone.out_indices = (0, 1, 2, 3)  # the case's 4-layer model (the config: 3, 5, 7, 11 of 12)
    m.backbone.norm_cfg = dict(type='BN')  # SyncBN in eval mode computes the same
    m.context_decoder.transformer_width = 64  # the case's reduced decoder (config: 256)
    m.neck.in_channels = [192, 192, 192 + 150, 192]
    m.text_encoder.vocabulary = list(case['class_names'])
    model = MODELS.build(m)
    model.backbone.init_weights()  # CLIP weights; the random parts come from the case
    missing = model.backbone.load_state_dict(case['backbone_fpn_state_dict'], strict=False)
    assert not missing.unexpected_keys, missing.unexpected_keys
    model.context_decoder.load_state_dict(case['context_decoder_state_dict'])
    with torch.no_grad():
        model.text_encoder.contexts.copy_(case['contexts'])
        model.gamma.copy_(case['gamma'])
    model.eval()
    checks = []
    add = lambda name, a, b: checks.append(Check(name, _max_diff(a, b)))  # noqa: E731
    tokens = model.backbone.clip.tokenize(model.vocabulary.names, context_length=model.text_encoder.context_length)
    checks.append(Check('class_tokens_mismatches', float((tokens != case['class_tokens']).sum()), 0))
    add('pos_embed_resized_14x20', interpolate_pos_embed(model.backbone.vit.tower.positional_embedding, (14, 20),
                                                         method='bilinear')[1:].T.reshape(1, -1, 14, 20),
        case['pos_embed_resized_14x20'])
    with torch.no_grad():
        for key in ('224', '224x320'):
            x = case[f'input_{key}']
            *levels, global_emb, visual = model.backbone(x)
            global_emb = global_emb.flatten(1)
            for i, lv in enumerate(levels):
                add(f'{key}_level{i}', lv, case[f'{key}_level{i}'])
            add(f'{key}_global_embedding', global_emb, case[f'{key}_global_embedding'])
            add(f'{key}_visual_embeddings', visual, case[f'{key}_visual_embeddings'])
            add(f'{key}_text_embeddings_pre_context', model.prompt_embeddings()[None],
                case[f'{key}_text_embeddings_pre_context'])
            _, feats, score, text = model.features(x)
            add(f'{key}_text_embeddings', text, case[f'{key}_text_embeddings'])
            add(f'{key}_score_map', score, case[f'{key}_score_map'])
            concat = torch.cat([levels[model.score_concat_index], score], 1)
            add(f'{key}_concat_level', concat, case[f'{key}_concat_level'])
    return checks


def _run_eva_clipself(case: dict, case_dir: Path, config: Path) -> list[Check]:
    """CLIPSelf on EVA-02: our EVA config's model with the case's EVA-CLIP model (config JSON ``model_name``.json and
    ``weights_file``, both next to the case) and the config's transforms on the case's image, boxes and masks."""
    import numpy as np
    from mmengine.config import Config

    from ovdense.clip.towers import rope_tables
    from ovdense.datasets.clipself import mask_to_grid
    from ovdense.models.backbones.clip_vit import OVCLIPViT, interpolate_pos_embed
    from ovdense.models.pretrainers.clipself import OVCLIPSelf, mask_features, roi_features

    cfg = Config.fromfile(str(config))
    model_cfg = {k: v for k, v in cfg.model.items() if k not in ('type', 'train_blocks')}
    model_cfg['clip'] = dict(config_file=str(case_dir / f"{case['model_name']}.json"),
                             checkpoint=str(case_dir / case['weights_file']))
    model = OVCLIPSelf(**model_cfg)
    model.init_weights()
    model.eval()
    student, clip = model.student, model.student.clip
    t = student.tower
    ds = cfg.train_dataloader.dataset
    checks = []
    add = lambda name, a, b: checks.append(Check(name, _max_diff(a, b)))  # noqa: E731
    with torch.no_grad():
        # text: the prompts as the reference tokenised them, F-ViT's template averaging
        tokens = clip.tokenize(case['prompts'])
        checks.append(Check('token_ids_mismatches', float((tokens != case['token_ids']).sum()), 0))
        feats = clip.encode_text(tokens)
        add('prompt_text_features', feats, case['prompt_text_features'])
        n = len(case['class_names'])
        emb = F.normalize(F.normalize(feats, dim=-1).view(n, -1, feats.shape[-1]).mean(1), dim=-1)
        add('text_embeddings', emb, case['text_embeddings'])
        add('logit_scale', clip.logit_scale, case['logit_scale'])
        # global embedding and per-block tokens at 224
        x224 = case['input224']
        add('image224_embedding', clip.encode_image(x224), case['image224_embedding'])
        vanilla = OVCLIPViT(clip, None, pos_interp=student.pos_interp)
        tok, (h, w) = vanilla.embed(x224)
        rope = t.rope(h, w)
        blocks = []
        for blk in t.blocks:
            tok = vanilla.block(blk, tok, rope)
            blocks.append(tok[0])
        add('image224_block_tokens', torch.stack(blocks), case['image224_block_tokens'])
        add('image224_final_norm_tokens', t.ln_post(tok), case['image224_final_norm_tokens'])
        # encode_dense (maskclip: the value path of the last block, residual and FFN kept)
        out = student.forward_tokens(x224)
        add('dense224_tokens_pre_l2norm', out.tokens[:, 1:], case['dense224_tokens_pre_l2norm'])
        add('dense224_feature_map', student.dense_features(x224, normalize=True), case['dense224_feature_map'])
        last_in = blocks[-2][None]
        add('dense224_last_block_input', last_in, case['dense224_last_block_input'])
        add('dense224_last_block_output_patches', student.method.last_block(student, t.blocks[-1], last_in, (h, w), rope)[:, 1:],
            case['dense224_last_block_output_patches'])
        for g in (14, 28, 64):
            sin, cos = rope_tables(g, g, t.width // t.num_heads, t.rope_ref)
            add(f'rope_freqs_cos_{g}x{g}', cos, case[f'rope_freqs_cos_{g}x{g}'])
            add(f'rope_freqs_sin_{g}x{g}', sin, case[f'rope_freqs_sin_{g}x{g}'])
        for g in (28, 64):
            add(f'rescaled_pos_embed_{g}x{g}', interpolate_pos_embed(t.positional_embedding, (g, g),
                                                                     method=student.pos_interp),
                case[f'rescaled_pos_embed_{g}x{g}'])
        add('nonsquare_pos_embed_21x28', interpolate_pos_embed(t.positional_embedding, (21, 28),
                                                               method=student.pos_interp), case['nonsquare_pos_embed_21x28'])
        x448 = case['input448']
        add('dense448_feature_map', student.dense_features(x448, normalize=True), case['dense448_feature_map'])
        add('dense448_tokens_pre_l2norm', student.forward_tokens(x448).tokens[:, 1:],
            case['dense448_tokens_pre_l2norm'])
    # the 1024 training step: our transforms on the original image, then the loss on the reference's tensors
    _clipself_inputs(case, ds, add)
    x, boxes = case['input'], case['boxes_normed_input']
    with torch.no_grad():
        add('teacher_crop_features', model.teacher.encode_image(case['teacher_crops']), case['teacher_crop_features'])
        dense = student.dense_features(x, normalize=True)
        add('dense_feature_map', dense, case['dense_feature_map'])
        add('dense_tokens_pre_l2norm', student.forward_tokens(x).tokens[:, 1:], case['dense_tokens_pre_l2norm'])
        roi = roi_features(dense, [boxes])
        add('student_roi_features', roi, case['student_roi_features'])
        add('roi_features', roi, case['roi_features'])
        add('encode_rois_and_image_rois', F.normalize(roi, dim=-1), case['encode_rois_and_image_rois'])
        add('encode_rois_and_image_image', F.normalize(vanilla.forward_tokens(x).tokens[:, 0], dim=-1),
            case['encode_rois_and_image_image'])
        loss = model(x, [dict(boxes=boxes, crops=case['teacher_crops'])], mode='loss')['loss_cosine']
        add('loss_cosine', loss, case['loss_cosine'])
        gh, gw = dense.shape[-2:]
        grid = torch.stack([mask_to_grid(m.numpy().astype(np.uint8), gh) for m in case['masks_full_res']])
        checks.append(Check('masks_feature_grid_mismatches', float((grid != case['masks_feature_grid']).sum()), 0))
        add('mask_pooled_features', mask_features(dense, [case['masks_feature_grid']]), case['mask_pooled_features'])
    return checks


def _protocol_config(case: dict) -> Path:
    """Our shipped config of the case's reference and protocol file (``configs/cfg_<dataset>.py``)."""
    from ovdense.apis import find_config
    dataset = Path(case['config_file']).stem.removeprefix('cfg_').replace('city_scapes', 'cityscapes')
    return find_config(case['reference'], dataset)


class _Recorder:
    """Records the arguments and results of named functions or methods while a block runs (values untouched)."""

    def __init__(self, *targets: tuple[object, str]) -> None:
        self.targets, self.calls = targets, {name: [] for _, name in targets}

    def __enter__(self) -> '_Recorder':
        # (object, name, the original, whether the object itself held it): instances get a wrapper of their own
        self.saved = [(obj, name, getattr(obj, name), name in vars(obj)) for obj, name in self.targets]
        for obj, name, fn, _ in self.saved:
            def wrapper(*args, _fn=fn, _name=name, **kwargs):
                out = _fn(*args, **kwargs)
                self.calls[_name].append((args, kwargs, out))
                return out
            setattr(obj, name, wrapper)
        return self

    def __exit__(self, *exc) -> None:
        for obj, name, fn, own in reversed(self.saved):
            if own:
                setattr(obj, name, fn)
            else:
                delattr(obj, name)


def _build_protocol_model(case: dict, golden_dir: Path, config: Path):
    """Our config of the case's protocol with the case's CLIP (files named by the case, relative to the golden root)
    and the method's ``reference_quirks`` on; the test pipeline's input of the case's image."""
    import mmcv
    from mmengine.config import Config
    from mmengine.dataset import Compose
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import ovdense.models  # noqa: F401
    cfg = Config.fromfile(str(config))
    init_default_scope('mmseg')
    cfg.model.backbone.clip = dict(config_file=str(golden_dir / case['clip_config']),
                                   checkpoint=str(golden_dir / case['clip_weights']))
    cfg.model.backbone.method.reference_quirks = True
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.eval()
    pipeline = Compose([t for t in cfg.test_pipeline if t['type'] != 'LoadAnnotations'])
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / 'image.png')
        mmcv.imwrite(case['image_rgb_uint8'].numpy()[:, :, ::-1], path)
        data = model.data_preprocessor({k: [v] for k, v in pipeline(dict(img_path=path)).items()}, False)
    return model, data['inputs'], data['data_samples'][0].metainfo


def _text_checks(model, case: dict, checks: list[Check]) -> torch.Tensor:
    vocab = model.vocabulary
    checks.append(Check('vocabulary_queries', float(vocab.queries != list(case['class_names'])), 0))
    checks.append(Check('vocabulary_query_to_class', float(not torch.equal(vocab.query_to_class, case['query_to_class'])), 0))
    checks.append(Check('templates', float(list(model.text_encoder.prompt_templates()) != list(case['templates'])), 0))
    text = model.class_embeddings().queries
    checks.append(Check('text_embeddings', _max_diff(text, case['text_embeddings'])))
    return text


def _set_checks(name: str, mine: torch.Tensor, gold: list, checks: list[Check]) -> None:
    """Discrete decisions: per window, the symmetric difference of two index sets (0 = identical)."""
    diff = sum(len(set(torch.nonzero(m).flatten().tolist()) ^ set(map(int, g))) for m, g in zip(mine, gold))
    checks.append(Check(f'{name}_mismatches', float(diff), 0))


def _run_scclip(case: dict, golden_dir: Path, config: Path) -> list[Check]:
    """SC-CLIP: our protocol config (CLIP from the case, the reference's LOF); the six windows in one batch."""
    from ovdense.models.methods import scclip
    from ovdense.models.utils import slide_windows

    model, inputs, meta = _build_protocol_model(case, golden_dir, config)
    bb, m, proto = model.backbone, model.backbone.method, case['protocol']
    checks: list[Check] = []
    add = lambda name, a, b: checks.append(Check(name, _max_diff(a, b)))  # noqa: E731
    knobs = dict(logit_scale=model.logit_scale, prob_thd=model.prob_thd, area_thd=model.area_thd,
                 slide_crop=model.slide_crop, slide_stride=model.slide_stride, pre_adjust_idx=m.pre_adjust_idx,
                 post_adjust_idx=m.post_adjust_idx, multi_start_idx=m.multi_start_idx, multi_end_idx=m.multi_end_idx,
                 res_cls=m.res_cls, beta=m.beta, lof_n_neighbors=m.n_neighbors, lof_contamination=m.contamination,
                 simi_scale=m.attn_temperature, patch_size=bb.patch_size)
    checks.append(Check('protocol_knobs', float(sum(knobs[k] != proto[k] for k in knobs)), 0))
    text = _text_checks(model, case, checks)
    add('input', inputs, case['input'])
    windows = slide_windows(*inputs.shape[-2:], model.slide_crop, model.slide_stride)
    checks.append(Check('slide_windows', float(not torch.equal(torch.tensor(windows), case['slide_windows_y1x1y2x2'])), 0))
    x = torch.cat([case['input'][:, :, a:c, b:d] for a, b, c, d in windows])  # all windows in one batch
    targets = [(scclip, n) for n in ('local_outlier_factor', 'nearest_neighbours', 'repair', 'aggregate',
                                      'thresholded_similarity')]
    with torch.no_grad(), _Recorder(*targets, (m, 'attention'), (m, 'attention_probs'), (bb, 'trunk')) as rec:
        out = bb.forward_tokens(x)
    calls = rec.calls
    add('window_block_outputs', torch.stack(calls['trunk'][0][2].outputs, 1), case['window_block_outputs'])
    lof = calls['local_outlier_factor'][0][2]
    add('window_lof_scores', lof, case['window_lof_scores'])
    knn_d, knn_i = calls['nearest_neighbours'][0][2]
    gold_d = case['window_lof_knn_sqdist']  # squared distances of tokens of norm ~40: relative
    checks.append(Check('window_lof_knn_sqdist_relative', _max_diff(knn_d, gold_d) / gold_d.abs().max().item()))
    # the neighbour sets (their order among equal distances is the sort's)
    checks.append(Check('window_lof_knn_set_mismatches', float(
        (knn_i.sort(-1).values != case['window_lof_knn_indices'].sort(-1).values).any(-1).sum()), 0))
    add('window_lof_threshold', torch.quantile(lof, 1 - m.contamination, dim=1), case['window_lof_threshold'])
    _set_checks('window_outlier', calls['repair'][0][0][1].flatten(1), case['window_outlier_indices'], checks)
    tokens = lambda t: t.flatten(2).transpose(1, 2)  # noqa: E731
    add('window_pre_adjust_repaired', tokens(calls['repair'][0][2]), case['window_pre_adjust_repaired'])
    add('window_repaired_tokens', tokens(calls['repair'][1][2]), case['window_repaired_tokens'])
    add('window_mid_simi', calls['thresholded_similarity'][0][2][0], case['window_mid_simi'])
    add('window_simi_mean', calls['thresholded_similarity'][0][2][0].mean((1, 2)), case['window_simi_mean'])
    add('window_agg1_out', calls['aggregate'][0][2], case['window_agg1_out'])
    add('window_attn_main', calls['attention_probs'][0][2], case['window_attn_main'])
    add('window_custom_attn_main_out', calls['attention'][0][2], case['window_custom_attn_main_out'])
    add('window_after_simi_thr', calls['thresholded_similarity'][1][2][1], case['window_after_simi_thr'])
    add('window_agg2_out', calls['aggregate'][1][2], case['window_agg2_out'])
    add('window_multilevel_sum_patches', calls['attention'][1][0][2], case['window_multilevel_sum'][:, 1:])
    add('window_attn_multi', calls['attention_probs'][1][2], case['window_attn_multi'])
    add('window_custom_attn_multi_out', calls['attention'][1][2], case['window_custom_attn_multi_out'])
    add('window_agg3_in', calls['aggregate'][2][0][0], case['window_agg3_in'])
    add('window_agg3_out', calls['aggregate'][2][2], case['window_agg3_out'])
    add('window_dense_features', out.tokens, case['window_dense_features'])
    with torch.no_grad():
        add('window_patch_logits', model.patch_logits(x, text), case['window_patch_logits'])
        shared = torch.load(golden_dir / 'shared_input_224.pt', weights_only=True)['input']
        add('shared224_dense_features', bb.forward_tokens(shared).tokens, case['shared224_dense_features'])
        add('shared224_patch_logits', model.patch_logits(shared, text), case['shared224_patch_logits'])
        with _Recorder((scclip, 'local_outlier_factor')) as rec:
            bb.forward_tokens(shared)
        add('shared224_lof_scores', rec.calls['local_outlier_factor'][0][2][0], case['shared224_lof_scores'])
        _set_checks('shared224_outlier', m.outliers(bb.trunk(shared, stop=-1).tokens[:, 1:]),
                    [case['shared224_outlier_indices']], checks)
    _segmentation_checks(model, inputs, meta, case, checks)
    return checks


def _segmentation_checks(model, inputs: torch.Tensor, meta: dict, case: dict, checks: list[Check]) -> None:
    """The whole image through the segmentor, and the post-processing probe of the case if it has one."""
    res = model.inference(inputs, [dict(img_shape=inputs.shape[-2:], ori_shape=meta['ori_shape'])],
                          return_probs=True, return_raw=True)[0]
    checks.append(Check('seg_logits_raw', _max_diff(res['logits'][None], case['seg_logits_raw'])))
    checks.append(Check('seg_logits', _max_diff(res['probs'], case['seg_logits'])))
    checks.append(Check('pred_label_mismatches', float((res['label'] != case['pred_label']).sum()), 0))
    if 'postprocess_probe_input' in case:
        probs, label = model.postprocess(case['postprocess_probe_input'][0], case['query_to_class'])
        checks.append(Check('postprocess_probe_seg_logits', _max_diff(probs, case['postprocess_probe_seg_logits'])))
        checks.append(Check('postprocess_probe_label_mismatches',
                            float((label != case['postprocess_probe_pred_label']).sum()), 0))


def _run_resclip(case: dict, golden_dir: Path, config: Path) -> list[Check]:
    """ResCLIP: our protocol config (CLIP from the case, the reference's arithmetic), the case's window(s), the
    224 px forward and its temp_thd = 0 probe."""
    from ovdense.models.backbones import interpolate_pos_embed
    from ovdense.models.methods import resclip

    model, inputs, meta = _build_protocol_model(case, golden_dir, config)
    bb, m, proto = model.backbone, model.backbone.method, case['protocol']
    checks: list[Check] = []
    add = lambda name, a, b: checks.append(Check(name, _max_diff(a, b)))  # noqa: E731
    knobs = dict(gaussian_std=m.std, temp_thd=m.temp_thd, delete_same_entity=m.delete_same_entity,
                 attn_rcs_weights=list(m.rcs_weights), attn_sfr_weights=list(m.sfr_weights),
                 rcs_layers_0based=list(m.rcs_blocks), logit_scale=model.logit_scale, prob_thd=model.prob_thd,
                 area_thd=model.area_thd, slide_crop=model.slide_crop, slide_stride=model.slide_stride,
                 temp_pamr=dict(num_iter=m.pamr.num_iter, dilations=list(m.pamr.dilations)), patch_size=bb.patch_size)
    checks.append(Check('protocol_knobs', float(sum(knobs[k] != proto[k] for k in knobs)), 0))
    checks.append(Check('temp_logit_scale', float(m.temp_logit_scale != proto['logit_scale']), 0))
    text = _text_checks(model, case, checks)
    add('input', inputs, case['input'])
    (y1, x1, y2, x2), = case['windows_y1x1y2x2'].tolist()
    x = case['input'][:, :, y1:y2, x1:x2]

    def forward(x: torch.Tensor, prefix: str) -> None:
        targets = [(resclip, n) for n in ('neighbourhood_bias', 'patch_vote', 'feedback_matrix')]
        ours: list[torch.Tensor] = []
        with torch.no_grad(), _given_paths(resclip, case[f'{prefix}valid_paths'], ours), \
                _Recorder(*targets, (m, 'temp_pixels'), (m, 'temp_labels'), (m, '_mix_rcs'),
                          (m, 'attention_logits'), (bb, 'out')) as rec:
            out = bb.forward_tokens(x, text=text)
        c = rec.calls
        gold = case[f'{prefix}temp_patch_logits']
        add(f'{prefix}temp_patch_logits', c['temp_labels'][0][0][1], gold if gold.dim() == 4 else gold[None])
        prob, arg = c['temp_pixels'][0][2]
        add(f'{prefix}temp_probs_max', prob, case[f'{prefix}temp_probs_max'][None])
        checks.append(Check(f'{prefix}temp_probs_argmax_mismatches',
                            float((arg != case[f'{prefix}temp_probs_argmax']).sum()), 0))
        checks.append(Check(f'{prefix}patch_matrix_mismatches',
                            float((c['patch_vote'][0][2] != case[f'{prefix}patch_matrix']).sum()), 0))
        checks.append(_path_flips(f'{prefix}valid_paths', *ours[0], case[f'{prefix}valid_paths'],
                                  quirks=m.reference_quirks))
        add(f'{prefix}attention_sfr', c['feedback_matrix'][0][2], case[f'{prefix}attention_sfr'][1:, 1:])
        add(f'{prefix}dense_features', out.tokens, case[f'{prefix}dense_features'])
        with torch.no_grad(), _given_paths(resclip, case[f'{prefix}valid_paths'], []):
            add(f'{prefix}patch_logits', model.patch_logits(x, text), case[f'{prefix}patch_logits'])
        if not prefix:
            add('omega_cached', c['neighbourhood_bias'][0][2], case['omega_cached'])
            add('temp_attn', c['_mix_rcs'][0][2], case['temp_attn'][None])
            add('temp_custom_attn_out', c['out'][-2][2], case['temp_custom_attn_out'][None])  # after the trunk's
            add('final_attn_logits', c['attention_logits'][1][2], case['final_attn_logits'][None])
            add('final_attn', c['_mix_rcs'][1][2], case['final_attn'][None])
            add('final_custom_attn_out', c['out'][-1][2], case['final_custom_attn_out'][None])
            add('attention_rcs', c['_mix_rcs'][0][0][1], case['attention_rcs'][None])

    forward(x, '')
    with torch.no_grad():
        h, w = case['n_patches']
        add('pos_embed_interpolated', interpolate_pos_embed(bb.tower.positional_embedding, (h, w),
                                                            method=bb.pos_interp)[None], case['pos_embed_interpolated'])
        trunk = bb.trunk(x, stop=-1, keep_outputs=True)
        add('block_inputs', torch.cat([bb.embed(x)[0], *trunk.outputs]), case['block_inputs'])
    shared = torch.load(golden_dir / 'shared_input_224.pt', weights_only=True)['input']
    forward(shared, 'shared224_')
    thd = m.temp_thd
    m.temp_thd = case['probe_thd0_temp_thd']
    try:
        forward(shared, 'probe_thd0_')
    finally:
        m.temp_thd = thd
    with _given_paths(resclip, case['valid_paths'], []):  # the case's image is its one window
        _segmentation_checks(model, inputs, meta, case, checks)
    return checks


# ResCLIP rounds the points of straight paths between patches half to even; a point at x.5 in exact arithmetic is
# x.5 +- 1e-7 in float32, on either side with the CPU's kernels (ATen's scalar kernels flip 30 paths of the case,
# which moves the final attention logits by 5e-3). The decisions are compared first: every path decided otherwise
# than the reference must have a sampled point within PATH_MARGIN of a rounding tie (a check named
# ``..._valid_paths_flips_<count>``, its value the largest such distance), and the tensors are compared given the
# reference's paths.
PATH_MARGIN = 1e-5


@contextmanager
def _given_paths(resclip, gold: torch.Tensor, ours: list[tuple[tuple[int, int], torch.Tensor]]):
    """ResCLIP's feedback prior built on the reference's valid paths (``gold``, (n, n)) where the grid is the case's;
    ours are appended to ``ours`` with their grid (h, w)."""
    original = resclip.valid_paths

    def given(labels: torch.Tensor, **kwargs) -> torch.Tensor:
        mine = original(labels, **kwargs)
        ours.append((tuple(labels.shape), mine))
        return gold.to(mine.device) if gold.shape == mine.shape else mine

    resclip.valid_paths = given  # feedback_matrix reads it from its module
    try:
        yield
    finally:
        resclip.valid_paths = original


def _path_tie_distance(h: int, w: int, p: int, q: int, quirks: bool) -> float:
    """The smallest distance of a sampled point of the path p -> q (an h x w grid, as ``resclip.valid_paths`` samples
    it, in float64) to a rounding tie (x.5)."""
    (py, px), (qy, qx) = divmod(p, w), divmod(q, w)
    steps, T = max(abs(py - qy), abs(px - qx)), max(h, w) - 1
    ts = torch.linspace(0, 1, T + 1, dtype=torch.float64)[:steps + 1] if quirks else \
        torch.arange(steps + 1, dtype=torch.float64) / max(steps, 1)
    pts = torch.tensor([py, px], dtype=torch.float64) * (1 - ts[:, None]) + torch.tensor([qy, qx]) * ts[:, None]
    return float(((pts - pts.floor()) - 0.5).abs().min())


def _path_flips(name: str, grid: tuple[int, int], ours: torch.Tensor, gold: torch.Tensor, *, quirks: bool) -> Check:
    """The paths of an h x w grid decided otherwise than the reference, held within PATH_MARGIN of a rounding tie."""
    if ours.shape != gold.shape:
        return Check(f'{name}_flips_?', float('inf'), PATH_MARGIN, 'max |point - tie| flipped')
    h, w = grid
    flips = (ours != gold).nonzero().tolist()
    dist = max((_path_tie_distance(h, w, p, q, quirks) for p, q in flips), default=0.0)
    return Check(f'{name}_flips_{len(flips)}', dist, PATH_MARGIN, 'max |point - tie| flipped')


def _declip_model(case: dict, golden_dir: Path, config: Path, cfg):
    """Our DeCLIP config with the case's protocol: the mode's attention, the loss weights, the lock, the alpha, the
    VFM (its timm architecture and the case's sizes) and the case's EVA-CLIP; the VFM input as the reference's."""
    import json

    from ovdense.models.pretrainers.clipself import OVCLIPSelf
    proto, vcfg = case['protocol'], case['vfm_config']
    if proto['use_vfm'] not in DECLIP_VFMS:
        raise NotImplementedError(f"no timm architecture for DeCLIP's VFM '{proto['use_vfm']}'; known: {sorted(DECLIP_VFMS)}")
    clip_cfg = json.loads((golden_dir / case['clip_config_file']).read_text())
    weights = {'OVRegionCosineLoss': proto['loss_content_weight'], 'OVContextLoss': proto['loss_context_weight']}
    losses = []
    for loss in cfg.model.losses:
        loss = dict(loss, weight=weights[loss['type']])
        if loss['type'] == 'OVContextLoss':
            loss['vfm'] = dict(model_name=DECLIP_VFMS[proto['use_vfm']], checkpoint=str(golden_dir / case['vfm_weights']),
                               model_kwargs=dict(embed_dim=vcfg['embed_dim'], depth=vcfg['depth'],
                                                 num_heads=vcfg['num_heads'], img_size=vcfg['img_size']))
            loss['reference_quirks'] = True
        losses.append(loss)
    model_cfg = {k: v for k, v in cfg.model.items() if k != 'type'}
    model_cfg.update(clip=dict(config_file=str(golden_dir / case['clip_config_file']),
                               checkpoint=str(golden_dir / case['clip_weights'])),
                     method=dict(type='OVDeCLIP', attention=case['mode'].removesuffix('_vfm_distill')),
                     losses=losses, alpha=proto['alpha'],
                     train_blocks=min(proto['lock_image_unlocked_groups'], clip_cfg['vision_cfg']['layers'])
                     if proto['lock_image'] else None)
    model = OVCLIPSelf(**model_cfg)
    model.init_weights()
    return model


def _run_declip(case: dict, golden_dir: Path, config: Path) -> list[Check]:
    """DeCLIP: our config's pretrainer with the case's protocol (:func:`_declip_model`), the config's transforms on the
    case's image and boxes, then the reference's tensors through every step: trunk, decoupled block per attention,
    dense maps, RoI features, the VFM, both similarities, the losses, the gradients and the parameters trained."""
    import logging

    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from PIL import Image

    from ovdense.clip.formats import open_clip_to_eva_clip
    from ovdense.clip.towers import rope_tables
    from ovdense.clip.vfm import dino_pos_embed
    from ovdense.clip.vfm import IMAGENET_MEAN, IMAGENET_STD
    from ovdense.datasets.clipself import OVCLIPSelfDataset, resize_longest, resize_max_size
    from ovdense.models.backbones.clip_vit import interpolate_pos_embed
    from ovdense.models.losses import student_similarity, vfm_similarity
    from ovdense.models.methods import OVDeCLIP, OVMaskCLIP, OVVanilla
    from ovdense.models.pretrainers.clipself import roi_features


    cfg = Config.fromfile(str(config))
    proto = case['protocol']
    model = _declip_model(case, golden_dir, config, cfg)
    model.train()
    student, t = model.student, model.student.tower
    context_loss = next(loss for loss in model.losses if loss.name == 'context')
    vfm = context_loss.vfm
    checks: list[Check] = []
    add = lambda name, a, b: checks.append(Check(name, _max_diff(a, b)))  # noqa: E731
    knobs = dict(input_size=proto['det_image_size'] // proto['downsample_factor'] * student.patch_size,
                 vfm_patch=vfm.patch_size, proxy=proto['proxy_resolution'] // vfm.patch_size,
                 crop=proto['input_size'], heads=proto['student_num_heads'], pos=vfm.pos_interp)
    want = dict(input_size=proto['det_image_size'], vfm_patch=proto['vfm_patch_size'],
                proxy=proto['det_image_size'] // proto['downsample_factor'], crop=t.image_size,
                heads=t.num_heads, pos='antialias' if proto['vfm_interpolate_antialias'] else 'dino')
    checks.append(Check('protocol_knobs', float(sum(knobs[k] != want[k] for k in knobs)), 0))

    # inputs: the config's dataset transforms at the case's sizes on the case's image
    ds = cfg.train_dataloader.dataset
    image = Image.fromarray(case['image_rgb_uint8'].numpy())
    w, h = image.size
    x, scale = resize_longest(image, proto['det_image_size'], mean=proto['image_mean'], std=proto['image_std'])
    add('input', x[None], case['input'])
    proxy = resize_longest(image, proto['proxy_resolution'], mean=IMAGENET_MEAN, std=IMAGENET_STD)[0]
    add('proxy_input', proxy[None], case['proxy_input'])
    checks.append(Check('dataset_proxy_size_knob', float('proxy_size' not in OVCLIPSelfDataset.__init__.__code__.co_varnames), 0))
    boxes_px = case['fixed_boxes_normed_original'][case['boxes_order']] * torch.tensor([w, h, w, h])
    add('boxes_normed_input', boxes_px * scale / proto['det_image_size'], case['boxes_normed_input'])
    crops = torch.stack([resize_max_size(image.crop(tuple(b.tolist())), ds.crop_size) for b in boxes_px])
    add('teacher_crops', crops, case['teacher_crops'])

    x, boxes, crops, proxy = case['input'], case['boxes_normed_input'], case['teacher_crops'], case['proxy_input']
    sample = dict(boxes=boxes, crops=crops, proxy=proxy[0])
    with torch.no_grad():
        grid = (x.shape[-2] // student.patch_size, x.shape[-1] // student.patch_size)
        add('student_rescaled_pos_embed', interpolate_pos_embed(t.positional_embedding, grid,
                                                                method=student.pos_interp)[None],
            case['student_rescaled_pos_embed'])
        sin, cos = rope_tables(*grid, t.width // t.num_heads, t.rope_ref)
        add('student_rope_freqs_cos', cos, case['student_rope_freqs_cos'])
        add('student_rope_freqs_sin', sin, case['student_rope_freqs_sin'])
        trunk = student.trunk(x, stop=-1)
        add('student_last_block_input', trunk.tokens, case['student_last_block_input'])
        add('student_last_block_output', student.method.last_block(student, t.blocks[-1], trunk.tokens, trunk.grid),
            case['student_last_block_output'])
        # the VFM and its similarity
        add('vfm_pos_embed', dino_pos_embed(vfm.model.pos_embed, grid, num_prefix=0, method=vfm.pos_interp),
            case['vfm_pos_embed'][:, 1:])
        tokens, _ = vfm.embed(proxy)
        add('vfm_tokens_block0_input', tokens, case['vfm_tokens_block0_input'])
        for blk in vfm.model.blocks:
            tokens = blk(tokens)
        add('vfm_final_norm_cls_registers', vfm.model.norm(tokens)[:, :5], case['vfm_final_norm_cls_registers'])
        feats = vfm.patch_features(proxy)
        add('vfm_patch_features', feats, case['vfm_patch_features'])
        checks.append(Check('vfm_grid_hw', float(list(feats.shape[-2:]) != list(case['vfm_grid_hw'])), 0))
        add('vfm_similarity', vfm_similarity(feats), case['vfm_similarity'])
        add('teacher_crop_features', F.normalize(model.teacher.encode_image(crops), dim=-1), case['teacher_crop_features'])
        # every attention mode: dense map, RoI features, context, similarity, losses (the main mode's own keys)
        main = case['mode'].removesuffix('_vfm_distill')
        for att in ('qq', 'kk', 'vv', 'csa', 'all'):
            student.method = OVDeCLIP(attention=att)
            out = student.forward_tokens(x)
            dense = student.to_map(out.tokens, out.grid)
            key = (lambda k: k) if att == main else (lambda k, _a=att: f'mode/{_a}/{k}')
            add(key('dense_map'), dense, case[key('dense_map')])
            roi = roi_features(dense, [boxes])
            if att == main:
                add('roi_boxes_feature_grid', boxes * torch.tensor([grid[1], grid[0]] * 2), case['roi_boxes_feature_grid'])
                add('roi_features_unnormalized', roi, case['roi_features_unnormalized'])
                add('roi_features_inference', F.normalize(roi, dim=-1), case['roi_features_inference'])
            add(key('roi_features'), F.normalize(roi, dim=-1), case[key('roi_features')])
            ctx = out.extras['context']
            ckey = 'student_context' if att == main else f'mode/{att}/context'
            if ckey in case:
                add(ckey, ctx[0].flatten(0, 1), case[ckey])
            sim = student_similarity(ctx, out.grid, tuple(feats.shape[-2:]))
            ref_shape = list(case[f'mode/{att}/student_similarity_shape'])
            sim_ref = sim.flatten(0, 1) if sim.dim() == 4 else sim  # the reference's (B * heads, M, M) layout
            checks.append(Check(f'mode/{att}/student_similarity_shape', float(list(sim_ref.shape) != ref_shape), 0))
            add(f'mode/{att}/student_similarity_rows0to3', sim_ref[:, :4], case[f'mode/{att}/student_similarity_rows0to3'])
            if att == main:
                add('student_similarity', sim, case['student_similarity'])
            losses = model(x, [sample], mode='loss')
            add(f'mode/{att}/loss_context', losses['loss_context'], case[f'mode/{att}/loss_context'])
            add(f'mode/{att}/loss_content', losses['loss_cosine'], case[f'mode/{att}/loss_content'])
            # batch 2 (the reference fails for csa / all): the same image twice gives the same losses
            two = model(x.expand(2, -1, -1, -1), [sample, sample], mode='loss')
            add(f'mode/{att}/loss_context_batch2', two['loss_context'], case[f'mode/{att}/loss_context'])
        for name, method in (('maskclip', OVMaskCLIP()), ('vanilla', OVVanilla())):
            student.method = method
            add(f'mode/{name}/dense_map', student.dense_features(x), case[f'mode/{name}/dense_map'])
        student.method = OVDeCLIP(attention=main)

    # one training step: losses, gradients, the trained parameters and their weight-decay groups
    model.zero_grad()
    losses = model(x, [sample], mode='loss')
    add('loss_context', losses['loss_context'], case['loss_context'])
    add('loss_context_unweighted', losses['context_dist'], case['loss_context_unweighted'])
    add('loss_content', losses['loss_cosine'], case['loss_content'])
    add('loss_content_unweighted', losses['cos_dissim'], case['loss_content_unweighted'])
    total = losses['loss_context'] + losses['loss_cosine']
    add('loss_total', total, case['loss_total'])
    total.backward()
    clip_model = student.clip.model
    ours = open_clip_to_eva_clip({n: n for n, _ in clip_model.named_parameters()})
    params = dict(clip_model.named_parameters())
    for name in case['grad_names']:
        grad, ref = params[ours[name]].grad, case[f'grad/{name}']
        if ref is None or grad is None:
            checks.append(Check(f'grad/{name}_none', float((ref is None) != (grad is None)), 0))
        else:
            add(f'grad/{name}', grad, ref)
    none = sorted(e for e, n in ours.items() if params[n].grad is None)
    checks.append(Check('grads_none_mismatches', float(len(set(none) ^ set(case['grads_none']))), 0))
    norms = case['grad_norms']
    checks.append(Check('grad_norms', max(abs(params[ours[e]].grad.double().norm().item() - v) for e, v in norms.items())))
    trainable = {e for e, n in ours.items() if params[n].requires_grad}
    checks.append(Check('trainable_params_mismatches', float(len(trainable ^ set(case['trainable_params']))), 0))
    logging.disable(logging.WARNING)  # mmengine logs every parameter of a paramwise config
    try:
        wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    finally:
        logging.disable(logging.NOTSET)
    names = {id(p): e for e, n in ours.items() for p in [params[n]]}
    no_wd = {names[id(p)] for g in wrapper.optimizer.param_groups if g['weight_decay'] == 0 for p in g['params']
             if id(p) in names and p.requires_grad}
    checks.append(Check('no_weight_decay_mismatches', float(len(no_wd ^ set(case['no_weight_decay_params']))), 0))
    opt = wrapper.optimizer.defaults
    args = case['args']
    checks.append(Check('optimizer_knobs', float((opt['lr'], opt['weight_decay'], tuple(opt['betas']), opt['eps'])
                                                 != (args['lr'], args['wd'], (args['beta1'], args['beta2']), args['eps'])), 0))
    return checks


def _catseg_model(case: dict, golden_dir: Path, cfg, vocabulary):
    """Our CAT-Seg config with the case's protocol: the tiny head's sizes (the case's head config), the guidance
    blocks, resolutions, sliding knobs, template, the case's CLIP and head weights, ``reference_quirks`` on."""
    import ast
    import json

    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    from safetensors.torch import load_file

    import ovdense.models  # noqa: F401
    from ovdense.models.segmentors.catseg import from_reference_state_dict
    proto = case['protocol']
    head_cfg = json.loads((golden_dir / 'catseg' / 'tiny_catseg_config.json').read_text())
    o = {k.split('.')[-1]: ast.literal_eval(v) for k, v in head_cfg['tiny_overrides'].items() if k != 'MODEL.DEVICE'}
    init_default_scope('mmseg')
    m = cfg.model
    m.backbone.clip = dict(config_file=str(golden_dir / 'tiny_clip_config.json'),
                           checkpoint=str(golden_dir / case['clip_weights']))
    m.backbone.out_indices = tuple(proto['layer_indexes'])
    m.backbone.method.cls_residual = True  # the reference copy of CLIP (its quirk 1)
    m.decode_head.update(width=proto['proj_dim'], embed_dim=o['TEXT_GUIDANCE_DIM'],
                         text_guidance_proj_dim=o['TEXT_GUIDANCE_PROJ_DIM'],
                         appearance_guidance_proj_dim=o['APPEARANCE_GUIDANCE_PROJ_DIM'], decoder_dims=o['DECODER_DIMS'],
                         decoder_guidance_dims=o['DECODER_GUIDANCE_DIMS'],
                         decoder_guidance_proj_dims=o['DECODER_GUIDANCE_PROJ_DIMS'], num_layers=o['NUM_LAYERS'],
                         num_heads=o['NUM_HEADS'], hidden_dim=o['HIDDEN_DIMS'], pad_len=proto['pad_len'],
                         window_size=proto['swin_window_size'][0], feature_resolution=proto['feature_resolution'])
    m.text_encoder.update(vocabulary=vocabulary, templates=list(proto['prompt_templates']))
    m.update(clip_resolution=proto['clip_resolution'], slide_size=proto['sliding_out_res'],
             slide_overlap=proto['sliding_overlap'], reference_quirks=True)
    model = MODELS.build(m)
    model.init_weights()
    state = from_reference_state_dict(load_file(str(golden_dir / case['head_weights'])))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith(('backbone.', 'text_encoder.')) for k in missing):
        raise ValueError(f'CAT-Seg head weights do not fit: missing {missing}, unexpected {unexpected}')
    return model


def _run_catseg(case: dict, golden_dir: Path, config: Path) -> list[Check]:
    """CAT-Seg: our config's model with the case's protocol (:func:`_catseg_model`) on the reference's mapper image:
    CLIP features and guidance, text, cost volume, every aggregation layer (global crop), decoder, logits, the sliding
    and whole-image probabilities and labels, the >256-class truncation."""
    import re

    from mmengine.config import Config

    cfg = Config.fromfile(str(config))
    proto = case['protocol']
    model = _catseg_model(case, golden_dir, cfg, list(case['class_names']))
    model.eval()
    checks: list[Check] = []
    add = lambda name, a, b: checks.append(Check(name, _max_diff(a, b)))  # noqa: E731
    pre = cfg.model.data_preprocessor
    pool = [int(v) for v in re.search(r'kernel_size=\[(\d+), (\d+)\]', case['train_protocol']['class_pooling']).groups()]
    knobs = dict(mean=list(pre['mean']), std=list(pre['std']),
                 stride=int(model.slide_window[0] * (1 - model.slide_overlap)), window=model.slide_window[0],
                 pool=list(model.decode_head.pooling_size),
                 shift=[b.shift for b in model.decode_head.transformer.layers[0].swin_block.children() if hasattr(b, 'shift')])
    want = dict(mean=list(proto['clip_pixel_mean']), std=list(proto['clip_pixel_std']), stride=proto['sliding_stride'],
                window=proto['sliding_kernel'], pool=pool, shift=list(proto['swin_shift_size']))
    for k in knobs:  # the config's preprocessing, sliding stride, training pooling and Swin shifts
        checks.append(Check(f'protocol_{k}', _max_diff(torch.tensor(knobs[k], dtype=torch.float64),
                                                       torch.tensor(want[k], dtype=torch.float64)), 1e-6))
    mean = torch.tensor(proto['clip_pixel_mean']).view(3, 1, 1)
    std = torch.tensor(proto['clip_pixel_std']).view(3, 1, 1)
    image = (case['mapper_image_uint8'].float() - mean) / std
    text = model.class_embeddings()
    add('text_embeddings', text.queries[:, None], case['text_embeddings'])
    head, agg = model.decode_head, model.decode_head.transformer
    seen: dict[str, list] = {}

    def hook(name):
        return lambda mod, inp, out: seen.setdefault(name, []).append(out)
    handles = [head.upsample1.register_forward_hook(hook('res4')),
               agg.guidance_projection.register_forward_hook(hook('proj_guidance')),
               agg.text_guidance_projection.register_forward_hook(hook('proj_text_guidance')),
               agg.decoder1.register_forward_hook(hook('decoder1')), head.register_forward_hook(hook('logits')),
               model.backbone.register_forward_hook(hook('backbone'))]
    handles += [p.register_forward_hook(hook(f'proj_decoder_guidance{i}'))
                for i, p in enumerate(agg.decoder_guidance_projection)]
    for i, layer in enumerate(agg.layers):
        handles += [layer.swin_block.block_1.register_forward_hook(hook(f'layer{i}_swin_block1')),
                    layer.swin_block.register_forward_hook(hook(f'layer{i}_swin')),
                    layer.attention.register_forward_hook(hook(f'layer{i}_class'))]
    gi, T = int(case['global_crop_index']), len(case['class_names'])
    size0 = case['image_rgb_uint8'].shape[:2]
    with torch.no_grad(), _Recorder((agg, 'correlation'), (agg, 'corr_embed')) as rec:
        probs = model.inference(image, text)
        sem = F.interpolate(probs[None], size=size0, mode='bilinear', align_corners=False)[0]
    for h in handles:
        h.remove()
    g0, g1, dense = seen['backbone'][0]
    k = model.slide_window
    canvas = F.interpolate(image[None], size=model.slide_size, mode='bilinear', align_corners=False)
    crops = F.unfold(canvas, k, stride=knobs['stride'])[0].T.reshape(-1, 3, *k)
    with torch.no_grad():
        out = model.backbone.forward_tokens(torch.cat([crops, F.interpolate(image[None], size=k, mode='bilinear',
                                                                            align_corners=False)]))
    add('clip_dense_features', out.tokens, case['clip_dense_features'])
    ref_g = case['guidance_layer_tokens'][:, 1:].permute(0, 2, 3, 1).reshape(2, -1, g0.shape[1], *g0.shape[-2:])
    add('guidance_layer_tokens', torch.stack([g0, g1]), ref_g)
    add('res4_global_ch0_15', seen['res4'][0][gi:gi + 1, :16], case['res4_global_ch0_15'])
    with torch.no_grad():
        add('res5_global_ch0_15', head.upsample2(g1[gi:gi + 1])[:, :16], case['res5_global_ch0_15'])
    add('corr', rec.calls['correlation'][0][2], case['corr'])
    add('corr_embed_global', rec.calls['corr_embed'][0][2][gi:gi + 1], case['corr_embed_global'])
    for name in ('proj_guidance', 'proj_text_guidance', 'proj_decoder_guidance0', 'proj_decoder_guidance1'):
        add(name, seen[name][0], case[name])
    B, C = dense.shape[0], agg.layers[0].swin_block.block_1.norm1.normalized_shape[0]
    H, W = model.decode_head.feature_resolution
    for i in range(len(agg.layers)):
        b1 = seen[f'layer{i}_swin_block1'][0].view(B, T, H, W, C)[gi].permute(3, 0, 1, 2)[None]
        add(f'layer{i}_swin_block1_global', b1, case[f'layer{i}_swin_block1_global'])
        add(f'layer{i}_swin_global', seen[f'layer{i}_swin'][0][gi:gi + 1], case[f'layer{i}_swin_global'])
        add(f'layer{i}_class_global', seen[f'layer{i}_class'][0][gi:gi + 1], case[f'layer{i}_class_global'])
    d1 = seen['decoder1'][0]
    add('decoder1_global', d1.view(B, T, *d1.shape[1:])[gi, case['decoder1_global_classes']], case['decoder1_global'])
    add('window_logits_probe', seen['logits'][0][:, case['probe_classes']], case['window_logits_probe'])
    add('sem_seg', sem, case['sem_seg'])
    _label_checks('pred_label', sem, case['pred_label'], checks)
    # the whole-image path (the reference pads to 32 and stretches the band: reference_quirks)
    model.test_cfg['mode'] = 'whole'
    seen.clear()
    handles = [model.backbone.register_forward_pre_hook(lambda mod, inp: seen.update(clip_input=inp[0])),
               head.register_forward_hook(hook('logits'))]
    with torch.no_grad():
        whole = F.interpolate(model.inference(image, text)[None], size=size0, mode='bilinear', align_corners=False)[0]
    for h in handles:
        h.remove()
    add('whole_clip_input', seen['clip_input'], case['whole_clip_input'])
    add('whole_logits_probe', seen['logits'][0][:, case['probe_classes']], case['whole_logits_probe'])
    add('whole_sem_seg_probe', whole[case['probe_classes']], case['whole_sem_seg_probe'])
    add('whole_sem_seg_max', whole.max(0).values, case['whole_sem_seg_max'])
    _label_checks('whole_pred_label', whole, case['whole_pred_label'], checks)
    _catseg_big_vocabulary(model, image, case, checks)
    _catseg_training_step(case, golden_dir, config, checks)
    return checks


def _catseg_big_vocabulary(model, image: torch.Tensor, case: dict, checks: list[Check]) -> None:
    """The whole-image path with the case's >256-class vocabulary: each class's best cosine, the 256 kept, the -100
    logits of the others, labels and per-class probability sums."""
    add = lambda name, a, b: checks.append(Check(name, _max_diff(a, b)))  # noqa: E731
    text = model.class_embeddings(list(case['big_class_names']))
    add('big_text_embeddings', text.queries[:, None], case['big_text_embeddings'])
    agg = model.decode_head.transformer
    seen = {}
    h = model.decode_head.register_forward_hook(lambda mod, inp, out: seen.update(logits=out))
    with torch.no_grad(), _Recorder((agg, 'correlation')) as rec:
        probs = model.inference(image, text)
    h.remove()
    corr = rec.calls['correlation'][0][2]
    add('big_corr', corr, case['big_corr'])
    add('big_class_max_cos', corr.transpose(1, 2).flatten(2).max(-1).values, case['big_class_max_cos'])
    logits = seen['logits']
    kept = (logits != -100).flatten(2).any(-1)[0].nonzero().flatten()
    checks.append(Check('big_selected_classes_mismatches',
                        float(len(set(kept.tolist()) ^ set(case['big_selected_classes_sorted'][0].tolist()))), 0))
    flat = logits.flatten(2)
    add('big_logits_mean', flat.mean(-1), case['big_logits_mean'])
    add('big_logits_max', flat.max(-1).values, case['big_logits_max'])
    add('big_logits_min', flat.min(-1).values, case['big_logits_min'])
    add('big_logits_probe', logits[0, case['big_logits_probe_classes']], case['big_logits_probe'])
    sem = F.interpolate(probs[None], size=case['image_rgb_uint8'].shape[:2], mode='bilinear', align_corners=False)[0]
    add('big_sem_seg_max', sem.max(0).values, case['big_sem_seg_max'])
    add('big_sem_seg_probe', sem[case['big_sem_seg_probe_classes']], case['big_sem_seg_probe'])
    checks.append(Check('big_sem_seg_sum_over_pixels', _max_diff(sem.double().flatten(1).sum(1),
                                                                 case['big_sem_seg_sum_over_pixels']), 1e-2))
    _label_checks('big_pred_label', sem, case['big_pred_label'], checks)


def _catseg_training_step(case: dict, golden_dir: Path, config: Path, checks: list[Check]) -> None:
    """One training step of our config on the reference's mapper output: the trained parameters, text embeddings
    (with gradients), logits, loss, gradients and the optimizer's groups (lr multipliers)."""
    import logging

    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    from ovdense.models.segmentors.catseg import reference_name
    add = lambda name, a, b: checks.append(Check(name, _max_diff(a, b)))  # noqa: E731
    cfg = Config.fromfile(str(config))
    model = _catseg_model(case, golden_dir, cfg, list(case['train_class_names']))
    model.train()
    proto = case['protocol']
    mean = torch.tensor(proto['clip_pixel_mean']).view(1, 3, 1, 1)
    std = torch.tensor(proto['clip_pixel_std']).view(1, 3, 1, 1)
    x = (case['train_images_uint8'].float() - mean) / std
    sample = SegDataSample(gt_sem_seg=PixelData(data=case['train_targets'].long()))
    ours_trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    ref_trainable = {reference_name(r)[0] for r in case['train_trainable_param_names']}
    checks.append(Check('train_trainable_mismatches', float(len(ref_trainable ^ ours_trainable)), 0))
    seen = {}
    hooks = [model.decode_head.register_forward_hook(lambda mod, inp, out: seen.update(logits=out))]
    text = model.class_embeddings()
    add('train_text_embeddings', text.queries[:, None].detach(), case['train_text_embeddings'])
    checks.append(Check('train_text_embeddings_have_grad', float(not text.queries.requires_grad), 0))
    loss = model.loss(x, [sample])['loss_sem_seg']
    for hk in hooks:
        hk.remove()
    add('train_logits_probe', seen['logits'][:, case['train_logits_probe_classes']], case['train_logits_probe'])
    add('train_logits_mean', seen['logits'].flatten(2).mean(-1), case['train_logits_mean'])
    add('train_loss', loss, case['train_loss_tensor'])
    loss.backward()
    params = dict(model.named_parameters())

    def grad_of(ref):
        name, rows = reference_name(ref)
        g = params[name].grad
        return None if g is None else (g.view(3, -1, g.shape[-1])[rows] if rows is not None else g)
    # gradients relative to their tensor's largest value: the head's bias gradient sums the 1.5M float32 terms of the
    # logit map, where the reference's own value is 2.7e-4 from the float64 gradient (ours 4.4e-5)
    for ref, want in case['train_grads'].items():
        mine = grad_of(ref)
        checks.append(Check(f'train_grad_rel/{ref}', _max_diff(mine, want) / max(want.abs().max().item(), 1e-12)
                            if mine is not None else float('inf'), 1e-3))
    for ref, none in case['train_frozen_grad_is_none'].items():
        g = grad_of(ref)
        frozen = g is None or not g.any()
        checks.append(Check(f'train_frozen/{ref}', float(frozen != none), 0))
    total = torch.stack([grad_of(r).double().norm() for r in case['train_trainable_param_names']]).norm()
    checks.append(Check('train_grad_total_norm_rel', abs(total.item() / case['train_grad_total_norm'] - 1), 1e-4))
    logging.disable(logging.WARNING)
    try:
        wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    finally:
        logging.disable(logging.NOTSET)
    lrs = sorted({g['lr'] for g in wrapper.optimizer.param_groups if any(p.requires_grad for p in g['params'])})
    checks.append(Check('train_lrs', max(abs(a - b) for a, b in zip(lrs, sorted(case['train_optimizer']['lrs']))), 1e-12))
    checks.append(Check('train_grad_clip', abs(cfg.optim_wrapper.clip_grad.max_norm -
                                               case['train_optimizer'].get('clip_value', 0.01)), 1e-12))


def _label_checks(name: str, probs: torch.Tensor, gold: torch.Tensor, checks: list[Check], margin: float = 1e-5) -> None:
    """Label mismatches where the top-2 margin of ``probs`` (K, H, W) exceeds ``margin`` (near-ties may flip), and how
    many pixels are that close (reported, not judged)."""
    top2 = probs.topk(2, dim=0).values
    sure = (top2[0] - top2[1]) > margin
    checks.append(Check(f'{name}_mismatches', float(((probs.argmax(0) != gold) & sure).sum()), 0))
    checks.append(Check(f'{name}_near_ties', float((~sure).sum()), float('inf')))
