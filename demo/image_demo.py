"""Open-vocabulary segmentation or detection of your images with the classes you name.

python demo/image_demo.py INPUTS --texts "sky, road, car" --mode clearclip --out-dir outputs/demo
python demo/image_demo.py INPUTS --task det --texts "dog, frisbee" --config CFG --weights DET.pth

INPUTS: image files, folders or globs. Segmentation writes per image NAME_overlay.png (colored classes
with a legend), NAME_label.png (class index per pixel, uint8, or uint16 beyond 256 classes) and
NAME_label.json (the vocabulary of those indices); detection writes NAME_det.png (boxes with class and
score) and NAME_det.json. Inputs with the same name in different folders get distinct output names.
Arguments are mmseg's / mmdet's demo names (--texts, --weights, --pred-score-thr, --palette, --opacity, --show,
--out-dir default outputs); the older --vocab, --load-from, --score-thr, --checkpoint work for one release.
Everything goes through ``ovdense.apis`` (``init_model`` / ``inference_model``).
"""
import argparse
import glob
import os
import sys
import time
from pathlib import Path

from ovdense.apis import ImageReadError, find_config, inference_model, init_model, read_image
from ovdense.cli import check_device, is_out_of_space, renamed
from ovdense.clip import CheckpointError, PretrainedWeightsUnavailable
from ovdense.models.methods import registered_methods
from ovdense.progress import progress_bar, stage_progress
from ovdense.runtime import keep_freed_memory
from ovdense.visualization import (clean_stale_temporaries, named_palette, save_detections, save_segmentation,
                                  unique_stems)
from ovdense.vocabulary import Vocabulary

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('inputs', nargs='+', help='image files, folders or globs')
    voc = p.add_mutually_exclusive_group(required=True)
    voc.add_argument('--texts', dest='vocab', help='comma-separated class names ("|" between synonyms), e.g. "sky, road"')
    voc.add_argument('--vocab', action=renamed('--texts'), help=argparse.SUPPRESS)
    voc.add_argument('--vocab-file', help='text file, one class per line, synonyms separated by commas')
    voc.add_argument('--dataset', help='a benchmark vocabulary, e.g. ade20k, voc21, coco80, lvis')
    p.add_argument('--task', default='seg', choices=['seg', 'det'], help='segmentation or detection')
    p.add_argument('--weights', help='trained weights (mmengine checkpoint) for --config: detectors and trained '
                                     'segmentors need them')
    p.add_argument('--load-from', dest='weights', action=renamed('--weights'), help=argparse.SUPPRESS)
    p.add_argument('--allow-untrained', action='store_true',
                   help='run a config with trained parts without --weights (to try the pipeline: meaningless output)')
    p.add_argument('--pred-score-thr', type=float, default=0.3, help='det: draw boxes scoring at least this')
    p.add_argument('--score-thr', dest='pred_score_thr', type=float, action=renamed('--pred-score-thr'),
                   help=argparse.SUPPRESS)
    p.add_argument('--palette', default='ovdense', help="class colours: 'ovdense' or an mmseg dataset's ('voc', ...)")
    p.add_argument('--opacity', type=float, default=0.55, help='seg: opacity of the class colours, in [0, 1]')
    p.add_argument('--show', action='store_true', help='also show each result in a window (needs a display)')
    p.add_argument('--mode', default='clearclip', choices=sorted(n for n, c in registered_methods().items()
                                                                   if not c.trained_for),
                   help="training-free dense method (protocol of its Context-59 config); trained ones: --config")
    p.add_argument('--config', help="config to take the model and protocol from (default: the mode's Context-59 one)")
    p.add_argument('--model', default='ViT-B-16', help='open_clip model name')
    p.add_argument('--pretrained', default='openai', help='open_clip pretrained tag')
    p.add_argument('--clip-checkpoint', help='local CLIP weights instead of the pretrained tag')
    p.add_argument('--checkpoint', dest='clip_checkpoint', action=renamed('--clip-checkpoint'), help=argparse.SUPPRESS)
    p.add_argument('--clip-config', help='open_clip model-config JSON (custom architectures)')
    p.add_argument('--device', default='cpu')
    p.add_argument('--out-dir', default='outputs', help='where the result files go (default: outputs)')
    return p.parse_args()


def collect(inputs: list[str]) -> list[Path]:
    files = []
    for item in inputs:
        if os.path.isdir(item):
            files += sorted(p for p in Path(item).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif not os.path.exists(item) and any(c in item for c in '*?['):  # an existing name is itself
            files += sorted(Path(p) for p in glob.glob(item))
        elif os.path.isfile(item):
            files.append(Path(item))
        else:  # said now, before the model loads
            raise FileNotFoundError(f'input not found: {item}')
    if not files:
        raise ValueError(f'no images found in {inputs}')
    return files


def check_out_dir(path: Path) -> None:
    """Before any model is loaded: the output folder exists or can be made, and is writable."""
    if path.exists() and not path.is_dir():
        raise ValueError(f'--out-dir {path} exists and is not a folder')
    path.mkdir(parents=True, exist_ok=True)
    if not os.access(path, os.W_OK):
        raise ValueError(f'--out-dir {path} is not writable')
    clean_stale_temporaries(path)  # what a killed run left


def check_display() -> None:
    """--show needs an OpenCV with a GUI and a display: said before the model loads."""
    import cv2
    try:
        cv2.namedWindow('ovdense')
    except cv2.error:
        raise ValueError('--show needs a display and an OpenCV with a GUI (this one has none, e.g. '
                         'opencv-python-headless); the results are written to --out-dir') from None


def main() -> int:
    args = parse_args()
    keep_freed_memory()  # a forward's buffers reused, not page-faulted in again per image
    if args.vocab is not None:
        vocab = Vocabulary.from_list(args.vocab, source='--vocab')
    elif args.vocab_file:
        vocab = Vocabulary.from_txt(args.vocab_file)
    else:
        vocab = Vocabulary.from_dataset(args.dataset)
    files, out = collect(args.inputs), Path(args.out_dir)
    check_out_dir(out)
    colors = named_palette(args.palette, len(vocab))
    if not 0.0 <= args.opacity <= 1.0:
        raise ValueError(f'--opacity must be in [0, 1], got {args.opacity}')
    if args.show:
        check_display()
    if args.task == 'det' and not args.config:
        raise ValueError('--task det needs --config (a detector config, e.g. configs/fvit/...) and --weights')
    config = args.config or find_config(args.mode, 'context59')
    clip = None
    if args.clip_config:
        clip = dict(config_file=args.clip_config, checkpoint=args.clip_checkpoint)
    elif not args.config or args.clip_checkpoint:  # the mode's protocol config names a ViT-B/16: use the CLI's CLIP
        clip = dict(model_name=args.model, pretrained=args.pretrained, checkpoint=args.clip_checkpoint)
    device = check_device(args.device)
    print(f'loading {Path(config).name} ...', file=sys.stderr, flush=True)
    start = time.monotonic()
    model = init_model(config, args.weights, clip=clip, device=device, allow_untrained=args.allow_untrained)
    print(f'model loaded in {time.monotonic() - start:.1f} s', file=sys.stderr, flush=True)
    stages = stage_progress(stream=sys.stderr) if sys.stderr.isatty() else None  # text / windows bars on a terminal
    if args.allow_untrained and args.weights is None and not getattr(model, 'training_free', False):
        print('warning: untrained weights (--allow-untrained): the output only shows the pipeline', file=sys.stderr)
    meta = dict(config=str(config), task=args.task)
    failed = []
    bar = progress_bar(len(files), 'images')
    for i, (path, stem) in enumerate(zip(files, unique_stems(files))):
        try:
            image = read_image(path)
            result = inference_model(model, image[:, :, ::-1], vocabulary=vocab, progress=stages)
            if args.task == 'det':
                written, _ = save_detections(out, stem, image, result.pred_instances, vocab.names, colors=colors,
                                             score_thr=args.pred_score_thr, image=str(path), **meta)
            else:
                written, _ = save_segmentation(out, stem, image, result.pred_sem_seg.data[0].cpu().numpy(),
                                               vocab.classes, alpha=args.opacity, colors=colors, image=str(path),
                                               **meta)
            if args.show:
                import cv2
                cv2.imshow('ovdense', cv2.imread(str(written.get('overlay', written.get('image')))))
                cv2.waitKey(0)
        except ImageReadError as e:
            failed.append(str(e))
        except OSError as e:
            if not is_out_of_space(e):
                raise
            done = i - len(failed)  # the images before this one that were written
            print(f'\nerror: no space left on the device writing {e.filename or out} ({os.strerror(e.errno)}): the '
                  f'results of {done} of {len(files)} images are complete in {out} (every file is written whole); '
                  'free space and run again for the rest', file=sys.stderr)
            return 1
        bar.update()
    print(f'\nwrote results for {len(files) - len(failed)} of {len(files)} images to {out}')
    for msg in failed:
        print(f'skipped: {msg}', file=sys.stderr)
    return 1 if failed else 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except (CheckpointError, PretrainedWeightsUnavailable, ValueError, FileNotFoundError) as e:
        print(f'error: {e}', file=sys.stderr)
        sys.exit(2)
