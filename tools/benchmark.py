"""Speed and memory of dense inference and of CLIPSelf training, measured on this machine (ovdense.benchmarks).

python tools/benchmark.py seg --model ViT-B-16 --mode clearclip --size 448 448 --crop 224 --stride 112
python tools/benchmark.py clipself --model ViT-B-16 --size 1024 1024 --batch 2 --boxes 6
python tools/benchmark.py clipself --model EVA02-B-16 --size 560 560 --batch 2 --boxes 20 --vfm vit_base_patch14_reg4_dinov2
python tools/benchmark.py catseg --size 640 640 --classes 847 --crop-batch 1
python tools/benchmark.py scale --mode naclip --size 1024 2048 --vocab lvis --templates openai
python tools/benchmark.py protocol --config configs/naclip/naclip_vit-b16_voc21-336.py --image IMG
python tools/benchmark.py reference --config configs/sclip/sclip_vit-b16_voc21-336.py --image IMG \
    --repo ../SCLIP --ref-config configs/cfg_voc21.py

``seg``: a dense inference against a plain open_clip forward over the same windows, and a fresh process's peak RSS.
``clipself`` / ``catseg``: seconds per training iteration / per image and the peak RSS.
``scale``: one image of any size through ``init_model`` + ``inference_model`` as the demo runs it.
``protocol``: a shipped protocol's stages against the FLOP bound at this machine's matmul rate, measured in the run.
``reference``: a reference's own code from a local checkout and ovdense alternated: ratio and label agreement.
Random weights of --model (no download) unless --checkpoint. Prints one JSON line: the arguments and the results.
"""
import argparse
import json

import torch

from ovdense import benchmarks
from ovdense.runtime import keep_freed_memory

SIZE = dict(type=int, nargs=2, metavar=('H', 'W'))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    tasks = p.add_subparsers(dest='task', required=True)

    def task(name: str, fn, model: str | None, about: str) -> argparse.ArgumentParser:
        t = tasks.add_parser(name, help=about)
        t.set_defaults(fn=fn)
        t.add_argument('--model', default=model, help=f'open_clip architecture, random weights (default: {model})')
        t.add_argument('--clip-config', help='open_clip model-config JSON instead of --model')
        t.add_argument('--threads', type=int, default=2, help='torch threads (default: 2)')
        return t

    t = task('seg', benchmarks.dense_vs_plain, 'ViT-B-16', 'dense inference against a plain forward')
    t.add_argument('--mode', default='clearclip')
    t.add_argument('--size', default=(448, 448), **SIZE)
    t.add_argument('--crop', type=int, default=224)
    t.add_argument('--stride', type=int, default=112)
    t.add_argument('--window-batch', type=int, default=8)
    t.add_argument('--vocab', default='voc21', help='a dataset vocabulary name')
    t.add_argument('--repeat', type=int, default=3)

    t = task('clipself', benchmarks.clipself_iteration, 'ViT-B-16', 'a CLIPSelf / DeCLIP training iteration')
    t.add_argument('--size', default=(1024, 1024), **SIZE)
    t.add_argument('--batch', type=int, default=2, help='images per iteration')
    t.add_argument('--boxes', type=int, default=6, help='regions per image')
    t.add_argument('--vfm', help="DeCLIP with this timm VFM (random weights), e.g. 'vit_base_patch14_reg4_dinov2'")
    t.add_argument('--repeat', type=int, default=3)

    t = task('catseg', benchmarks.catseg_inference, 'ViT-B-16', 'CAT-Seg inference of one image')
    t.add_argument('--size', default=(640, 640), **SIZE)
    t.add_argument('--classes', type=int, default=150, help='made-up class names')
    t.add_argument('--crop-batch', type=int, help='crops aggregated at once (default: all 5)')
    t.add_argument('--catseg-mode', dest='mode', default='slide', choices=['slide', 'whole'])
    t.add_argument('--repeat', type=int, default=3)

    t = task('scale', benchmarks.scale, None, 'one image of any size through the public API')
    t.add_argument('--config', help="the protocol's config (default: the mode's Context-59 one)")
    t.add_argument('--mode', default='clearclip')
    t.add_argument('--checkpoint', help='local CLIP weights (of --model or --clip-config; default: the tiny CLIP)')
    t.add_argument('--size', default=(448, 448), **SIZE)
    t.add_argument('--image', help='a real image, resized to --size, instead of random pixels')
    t.add_argument('--vocab', default='voc21', help='a dataset vocabulary name or a vocabulary file')
    t.add_argument('--classes', type=int, help='a vocabulary of this many made-up class names')
    t.add_argument('--templates', help="prompt templates (a set name), default: the config's")
    t.add_argument('--budget', type=int, help="the model's memory_budget in bytes (default: the model's)")
    t.add_argument('--images', type=int, default=1,
                   help='segment the image this many times: seg_s and pamr_s of each, the peak RSS as over a data set')

    for name, fn, about in (('protocol', benchmarks.protocol, 'a shipped protocol against the FLOP bound'),
                           ('reference', benchmarks.reference, "a reference's own code against ovdense")):
        # OpenAI's ViT-B/16, the architecture of the weights the shipped configs load (pretrained='openai')
        t = task(name, fn, 'ViT-B-16-quickgelu', about)
        t.add_argument('--config', required=True, help="the protocol's config")
        t.add_argument('--image', required=True)
        t.add_argument('--repeat', type=int, default=3)
        if name == 'protocol':
            t.add_argument('--checkpoint', help='local CLIP weights of --model or --clip-config')
        else:
            t.add_argument('--repo', required=True, help="the reference's local checkout (e.g. SCLIP, NACLIP)")
            t.add_argument('--ref-config', required=True, help='its config, relative to --repo (configs/cfg_voc21.py)')
    return p


def main() -> None:
    args = parser().parse_args()
    keep_freed_memory()  # as the tools and demos run (ovdense.runtime)
    torch.set_num_threads(args.threads)
    kwargs = {k: v for k, v in vars(args).items() if k not in ('task', 'fn', 'threads')}
    print(json.dumps(dict(task=args.task, threads=args.threads, **kwargs, **args.fn(**kwargs))))


if __name__ == '__main__':
    main()
