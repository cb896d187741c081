"""Export a training-free segmentor with a fixed vocabulary to ONNX.

python tools/export_onnx.py CONFIG --texts 'sky, road, car' --size H W [--out model.onnx] [--batch B] [--check]

The graph takes images (B, 3, H, W) normalised with the CLIP's statistics (in the file's metadata, with the class
names) and returns class probabilities (B, C, H, W) and labels (B, H, W); ``ovdense.export`` says what it holds and
what it leaves out (PAMR, the area rule, resizing to the original size). ``--check`` runs it with ONNX Runtime on
random images and compares it with ovdense's own inference (PyTorch): exit status 1 beyond 1e-4.
"""
import argparse
import sys

import torch

from ovdense.apis import init_model
from ovdense.cli import OptionsAction, fail
from ovdense.clip import CheckpointError, PretrainedWeightsUnavailable
from ovdense.vocabulary import Vocabulary


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config')
    voc = p.add_mutually_exclusive_group()
    voc.add_argument('--texts', help="class names, comma-separated ('a, b | b2, c') or mmdet's 'a . b . c'")
    voc.add_argument('--dataset', help='a benchmark vocabulary, e.g. voc21, ade20k (default: the config\'s)')
    p.add_argument('--size', type=int, nargs=2, required=True, metavar=('H', 'W'), help='input size of the graph')
    p.add_argument('--batch', type=int, default=1, help='images per call of the graph')
    p.add_argument('--out', default='model.onnx')
    p.add_argument('--clip-checkpoint', help='local CLIP weights instead of the pretrained tag')
    p.add_argument('--clip-config', help='open_clip model-config JSON for --clip-checkpoint')
    p.add_argument('--opset', type=int, default=18)
    p.add_argument('--check', action='store_true', help='compare ONNX Runtime with PyTorch on random images')
    p.add_argument('--cfg-options', nargs='+', action=OptionsAction, help='override config keys, key=value')
    return p.parse_args()


def main() -> int:
    args = parse_args()
    from ovdense.export import export_onnx, onnx_runtime_check
    vocab = (Vocabulary.coerce(args.texts) if args.texts else Vocabulary.from_dataset(args.dataset)
             if args.dataset else None)
    opts, clip = dict(args.cfg_options or {}), None
    if args.clip_config:
        clip = dict(config_file=args.clip_config, checkpoint=args.clip_checkpoint)
    elif args.clip_checkpoint:
        opts['model.backbone.clip.checkpoint'] = args.clip_checkpoint
    try:
        model = init_model(args.config, clip=clip, cfg_options=opts)
        export_onnx(model, args.out, size=tuple(args.size), vocabulary=vocab, batch=args.batch, opset=args.opset)
    except (ValueError, FileNotFoundError, CheckpointError, PretrainedWeightsUnavailable) as e:
        fail(str(e))
    print(f'wrote {args.out}: images ({args.batch}, 3, {args.size[0]}, {args.size[1]}) -> probs, labels')
    if args.check:
        diff, mismatches = onnx_runtime_check(model, args.out, vocabulary=vocab, size=tuple(args.size),
                                              batch=args.batch)
        print(f'ONNX Runtime vs PyTorch: max |probs diff| = {diff:.3g}, labels differing = {mismatches}')
        return 0 if diff <= 1e-4 else 1
    return 0


if __name__ == '__main__':
    torch.set_grad_enabled(False)
    sys.exit(main())
