"""Speed and memory of dense inference and of CLIPSelf training, measured on this machine.

python tools/benchmark.py seg --model ViT-B-16 --mode clearclip --size 448 448 --crop 224 --stride 112
python tools/benchmark.py clipself --model ViT-B-16 --size 1024 1024 --batch 2 --boxes 6
python tools/benchmark.py clipself --model EVA02-B-16 --size 560 560 --batch 2 --boxes 20 --vfm vit_base_patch14_reg4_dinov2
python tools/benchmark.py catseg --size 640 640 --classes 847 --crop-batch 1
python tools/benchmark.py scale --mode naclip --size 1024 2048 --vocab lvis --templates openai
python tools/benchmark.py protocol --config configs/naclip/naclip_vit-b16_voc21-336.py --image IMG
python tools/benchmark.py reference --config configs/sclip/sclip_vit-b16_voc21-336.py --image IMG \
    --repo ../SCLIP --ref-config configs/cfg_voc21.py

``protocol``: one image through a shipped protocol (random --model weights, or --checkpoint): each stage's
seconds, GFLOP and share of the FLOP bound at this machine's fp32 matmul rate, measured in the run.
``reference``: the reference's own code from a local checkout (--repo, its config --ref-config) and ovdense
(--config) on the same random OpenAI-format CLIP weights and image, alternated in one process: seconds of
each, their ratio, the share of pixels where the labels agree.

``scale``: one image of --size (random pixels, or --image resized) through the public API exactly as
the demo runs it (the mode's Context-59 protocol or --config, the shipped tiny CLIP unless --model),
with a vocabulary of --classes made-up names or --vocab: seconds to encode the text, seconds to
segment (and the share spent in PAMR), peak RSS of the process.

Random weights (the architecture of --model, no download). Reports per-image wall time of the full
dense inference (windows, text matching, merging, resize, post-processing) against a plain open_clip
image forward over the same windows in the same batches, their ratio, and the peak RSS of a fresh
process that builds the model and runs one dense inference.
"""
import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

from ovdense.runtime import keep_freed_memory


def build(args):
    from ovdense.models import OVCLIPViT, OVSegmentor
    from ovdense.models.methods import registered_methods
    from ovdense.vocabulary import Vocabulary
    clip = dict(model_name=args.model) if not args.clip_config else dict(config_file=args.clip_config)
    method = dict(type=registered_methods()[args.mode].__name__)
    seg = OVSegmentor(OVCLIPViT(clip, method), dict(vocabulary=Vocabulary.from_dataset(args.vocab), templates='none'),
                      slide_crop=args.crop, slide_stride=args.stride, window_batch=args.window_batch).eval()
    return seg


def run_seg(args) -> dict:
    from ovdense.models.utils import slide_windows
    torch.set_num_threads(args.threads)
    seg = build(args)
    h, w = args.size
    x = torch.randn(1, 3, h, w)
    meta = [dict(img_shape=(h, w), ori_shape=(h, w))]
    seg.class_embeddings()  # cached text side, as in a dataset run
    visual = seg.backbone.clip.visual
    windows = slide_windows(h, w, args.crop, args.stride) if args.crop > 0 else [(0, 0, h, w)]
    crops = torch.stack([x[0, :, y1:y2, x1:x2] for y1, x1, y2, x2 in windows])

    def plain():
        with torch.no_grad():
            for i in range(0, len(crops), args.window_batch):
                visual(crops[i:i + args.window_batch])

    def dense():
        seg.inference(x, meta)

    if args.only_dense:
        dense()
        return dict(peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    times = {}
    for name, fn in (('plain_forward', plain), ('dense_inference', dense)):
        fn()  # warm-up
        ts = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
        times[name] = min(ts)
    return dict(windows=len(windows), plain_forward_s=times['plain_forward'], dense_inference_s=times['dense_inference'],
                ratio=times['dense_inference'] / times['plain_forward'])


def run_clipself(args) -> dict:
    """Seconds per CLIPSelf training iteration (forward, backward, AdamW step) and the process's peak RSS; with
    ``--vfm`` DeCLIP's (its decoupled last block, content + context losses, the VFM at the student's grid)."""
    from ovdense.models import OVCLIPSelf
    torch.set_num_threads(args.threads)
    clip = dict(model_name=args.model) if not args.clip_config else dict(config_file=args.clip_config)
    declip = dict(method=dict(type='OVDeCLIP'), normalize_dense=False, losses=[
        dict(type='OVRegionCosineLoss'), dict(type='OVContextLoss', weight=0.1,
                                              vfm=dict(model_name=args.vfm, pretrained=False))]) if args.vfm else {}
    model = OVCLIPSelf(clip, **declip)
    model.init_weights()
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    crop = model.teacher.visual.image_size
    crop = crop[0] if isinstance(crop, tuple) else crop
    g = torch.Generator().manual_seed(0)
    images = torch.randn(args.batch, 3, *args.size, generator=g)
    samples = []
    for _ in range(args.batch):
        xy = torch.rand(args.boxes, 2, generator=g) * 0.6
        samples.append(dict(boxes=torch.cat([xy, xy + 0.1 + 0.3 * torch.rand(args.boxes, 2, generator=g)], 1),
                            crops=torch.randn(args.boxes, 3, crop, crop, generator=g)))
    ts = []
    for _ in range(args.repeat + 1):  # the first iteration is a warm-up
        t = time.perf_counter()
        loss = sum(v for k, v in model(images, samples, mode='loss').items() if k.startswith('loss_'))
        opt.zero_grad()
        loss.backward()
        opt.step()
        ts.append(time.perf_counter() - t)
    return dict(s_per_iter=min(ts[1:]), peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def run_catseg(args) -> dict:
    """Seconds per image of CAT-Seg ViT-B/16 (random weights) through its shipped config's model and protocol
    (--size: the image as the test pipeline gives it, --classes made-up names) and the process's peak RSS."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    torch.set_num_threads(args.threads)
    cfg = Config.fromfile(str(Path(__file__).resolve().parents[1] / 'configs/catseg/catseg_vit-b16_ade150-640.py'))
    init_default_scope('mmseg')
    cfg.model.backbone.clip = dict(model_name=args.model)
    cfg.model.update(crop_batch=args.crop_batch, test_cfg=dict(mode=args.catseg_mode))
    cfg.model.text_encoder.vocabulary = [f'made-up class {i}' for i in range(args.classes or 150)]
    model = MODELS.build(cfg.model).eval()
    text = model.class_embeddings()
    image = torch.randn(3, *args.size)
    ts = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        model.inference(image, text)
        ts.append(time.perf_counter() - t)
    return dict(s_per_image=min(ts), peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def run_scale(args) -> dict:
    """Seconds and peak RSS of one image of any size through ``init_model`` + ``inference_model``."""
    import numpy as np
    from mmengine.config import Config

    from ovdense.apis import find_config, inference_model, init_model, read_image
    from ovdense.vocabulary import Vocabulary
    torch.set_num_threads(args.threads)
    if args.model:  # that architecture, random weights or --checkpoint
        clip = dict(model_name=args.model, **({'checkpoint': args.checkpoint} if args.checkpoint else {}))
    else:
        from ovdense.assets import TINYCLIP_SYNTHETIC
        clip = dict(config_file=args.clip_config or TINYCLIP_SYNTHETIC['config_file'],
                    checkpoint=args.checkpoint or TINYCLIP_SYNTHETIC['checkpoint'])
    if args.classes:
        vocab = Vocabulary.from_list([f'class {i}' for i in range(args.classes)])
    else:
        vocab = Vocabulary.from_txt(args.vocab) if Path(args.vocab).is_file() else Vocabulary.from_dataset(args.vocab)
    opts = {} if args.templates is None else {'model.text_encoder.templates': args.templates}
    if args.budget:
        opts['model.memory_budget'] = args.budget
    config = args.config or find_config(args.mode, 'context59')
    if args.model and isinstance(Config.fromfile(str(config)).model.backbone.method.get('proxy'), dict):
        opts['model.backbone.method.proxy.pretrained'] = False  # random VFM weights too
    model = init_model(config, clip=clip, cfg_options=opts)
    h, w = args.size
    if args.image:
        import cv2
        image = np.ascontiguousarray(cv2.resize(read_image(args.image), (w, h), interpolation=cv2.INTER_LINEAR))
    else:
        image = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    pamr_s = [0.0]
    if getattr(model, 'pamr', None) is not None:  # time the outermost PAMR call of each kind
        for name in ('forward', 'affinity', 'refine'):
            fn = getattr(model.pamr, name, None)
            if fn is None:
                continue

            def timed(*a, _fn=fn, **k):
                if getattr(model.pamr, '_in', False):
                    return _fn(*a, **k)
                model.pamr._in, t = True, time.perf_counter()
                try:
                    return _fn(*a, **k)
                finally:
                    model.pamr._in = False
                    pamr_s[0] += time.perf_counter() - t
            setattr(model.pamr, name, timed)
    t = time.perf_counter()
    with torch.no_grad():
        model.class_embeddings(vocab)
    text_s = time.perf_counter() - t
    text_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    seg_s, per_image_pamr = [], []
    for _ in range(args.images):  # the same image again: the process's peak as over a data set (allocator state)
        t, p0 = time.perf_counter(), pamr_s[0]
        label = inference_model(model, image[:, :, ::-1], vocabulary=vocab).pred_sem_seg.data
        seg_s.append(round(time.perf_counter() - t, 2))
        per_image_pamr.append(round(pamr_s[0] - p0, 2))
    return dict(dense_mode=model.backbone.method.name, queries=len(vocab.queries), text_s=round(text_s, 2), seg_s=seg_s[0] if len(seg_s) == 1 else seg_s,
                pamr_s=per_image_pamr[0] if len(per_image_pamr) == 1 else per_image_pamr, classes_in_label=int(label.unique().numel()),
                peak_rss_after_text_mb=round(text_rss),
                peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def _protocol_model(args, clip: dict):
    from mmengine.config import Config

    from ovdense.apis import init_model
    opts = {}
    if isinstance(Config.fromfile(args.config).model.backbone.get('method', {}).get('proxy'), dict):
        opts['model.backbone.method.proxy.pretrained'] = False  # random VFM weights too
    return init_model(args.config, clip=clip, cfg_options=opts)


def run_protocol(args) -> dict:
    from ovdense.profiling import profile_inference
    torch.set_num_threads(args.threads)
    clip = dict(config_file=args.clip_config) if args.clip_config else dict(model_name=args.model)
    if args.checkpoint:
        clip['checkpoint'] = args.checkpoint
    res = profile_inference(_protocol_model(args, clip), args.image, repeat=args.repeat)
    return dict(res, peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def run_reference(args) -> dict:
    import tempfile

    from ovdense.clip import build_clip
    from ovdense.profiling import build_reference, compare_with_reference
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    arch = dict(config_file=args.clip_config) if args.clip_config else dict(model_name=args.model)
    with tempfile.TemporaryDirectory() as tmp:  # random weights in the OpenAI format, which both sides read
        weights = Path(tmp) / 'clip.pt'
        torch.save(build_clip(**arch).model.state_dict(), weights)
        ours = _protocol_model(args, dict(arch, checkpoint=str(weights)))
        reference = build_reference(args.repo, args.ref_config, weights)
    return compare_with_reference(ours, reference, args.image, repeat=args.repeat)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('task', choices=['seg', 'clipself', 'catseg', 'scale', 'protocol', 'reference'])
    p.add_argument('--model', default=None, help='open_clip architecture, random weights (seg/clipself: ViT-B-16; '
                                                 'protocol/reference: ViT-B-16-quickgelu, the architecture of the '
                                                 "OpenAI weights the shipped configs load; scale: the shipped tiny "
                                                 'CLIP unless given)')
    p.add_argument('--clip-config', help='open_clip model-config JSON instead of --model')
    p.add_argument('--mode', default='clearclip')
    p.add_argument('--size', type=int, nargs=2, default=(448, 448), metavar=('H', 'W'))
    p.add_argument('--crop', type=int, default=224)
    p.add_argument('--stride', type=int, default=112)
    p.add_argument('--window-batch', type=int, default=8)
    p.add_argument('--vocab', default='voc21', help='a dataset vocabulary name or a vocabulary file')
    p.add_argument('--repeat', type=int, default=3)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--batch', type=int, default=2, help='clipself: images per iteration')
    p.add_argument('--boxes', type=int, default=6, help='clipself: regions per image')
    p.add_argument('--vfm', help="clipself: DeCLIP with this timm VFM (random weights), e.g. 'vit_base_patch14_reg4_dinov2'")
    p.add_argument('--config', help='scale / protocol / reference: config of the protocol (scale\'s default: the mode\'s Context-59 one)')
    p.add_argument('--checkpoint', help='scale / protocol: local CLIP weights (of --model or --clip-config)')
    p.add_argument('--classes', type=int, help='scale: a vocabulary of this many made-up class names')
    p.add_argument('--templates', help='scale: prompt templates (a set name), default: the config\'s')
    p.add_argument('--budget', type=int, help='scale: the model\'s memory_budget in bytes (default: the model\'s)')
    p.add_argument('--images', type=int, default=1, help='scale: segment the image this many times: seg_s and pamr_s of each, the peak RSS as over a data set')
    p.add_argument('--image', help='scale: a real image, resized to --size, instead of random pixels; protocol / reference: the image')
    p.add_argument('--crop-batch', type=int, help='catseg: crops aggregated at once (default: all 5)')
    p.add_argument('--catseg-mode', default='slide', choices=['slide', 'whole'])
    p.add_argument('--repo', help='reference: the reference\'s local checkout (e.g. SCLIP, NACLIP)')
    p.add_argument('--ref-config', help='reference: its config, relative to --repo (e.g. configs/cfg_voc21.py)')
    p.add_argument('--only-dense', action='store_true', help=argparse.SUPPRESS)
    args = p.parse_args()
    keep_freed_memory()  # as the tools and demos run (ovdense.runtime)
    if args.task == 'scale':
        print(json.dumps(dict(vars(args), **run_scale(args))))
        return
    if args.task in ('protocol', 'reference'):
        args.model = args.model or 'ViT-B-16-quickgelu'  # OpenAI's ViT-B/16, as the configs' pretrained='openai'
        if not (args.config and args.image) or (args.task == 'reference' and not (args.repo and args.ref_config)):
            p.error(f'{args.task} needs --config and --image' + (', --repo and --ref-config' * (args.task == 'reference')))
        print(json.dumps(dict(vars(args), **(run_protocol if args.task == 'protocol' else run_reference)(args))))
        return
    args.model = args.model or 'ViT-B-16'
    if args.task in ('clipself', 'catseg'):
        print(json.dumps(dict(vars(args), **(run_clipself if args.task == 'clipself' else run_catseg)(args))))
        return
    res = dict(vars(args), **run_seg(args))
    if not args.only_dense:  # peak memory in a fresh process: model build + one dense inference
        out = subprocess.run([sys.executable, *sys.argv, '--only-dense'], capture_output=True, text=True, check=True)
        res['peak_rss_mb'] = json.loads(out.stdout.strip().splitlines()[-1])['peak_rss_mb']
    res.pop('only_dense')
    print(json.dumps(res))


if __name__ == '__main__':
    main()
