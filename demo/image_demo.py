"""Open-vocabulary segmentation or detection of your images with the classes you name.

python demo/image_demo.py INPUTS --vocab "sky, road, car" --mode clearclip --out-dir outputs/demo
python demo/image_demo.py INPUTS --task det --vocab "dog, frisbee" --config CFG --load-from DET.pth --out-dir out

INPUTS: image files, folders or globs. Segmentation writes per image NAME_overlay.png (colored classes
with a legend) and NAME_label.png (class index per pixel, uint8, or uint16 beyond 255 classes);
detection writes NAME_det.png (boxes with class and score) and NAME_det.json.
"""
import argparse
import glob
import os
import sys
from pathlib import Path

from ovdense.clip import CheckpointError, PretrainedWeightsUnavailable
from ovdense.progress import progress_bar
from ovdense.apis import ImageReadError, detect, find_config, init_detector, init_segmentor, read_image, segment
from ovdense.models.backbones import DENSE_MODES
from ovdense.visualization import draw_detections, overlay_segmentation, write_image_atomic, write_json_atomic
from ovdense.vocabulary import Vocabulary

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('inputs', nargs='+', help='image files, folders or globs')
    voc = p.add_mutually_exclusive_group(required=True)
    voc.add_argument('--vocab', help='comma-separated class names, e.g. "sky, road, car"')
    voc.add_argument('--vocab-file', help='text file, one class per line, synonyms separated by commas')
    voc.add_argument('--dataset', help='a benchmark vocabulary, e.g. ade20k, voc21, coco80, lvis')
    p.add_argument('--task', default='seg', choices=['seg', 'det'], help='segmentation or detection')
    p.add_argument('--load-from', help='det: trained detector checkpoint (mmengine) for --config')
    p.add_argument('--score-thr', type=float, default=0.3, help='det: draw boxes scoring at least this')
    p.add_argument('--mode', default='clearclip', choices=DENSE_MODES, help='dense mode (protocol of its config)')
    p.add_argument('--config', help='config to take the protocol from (default: the mode\'s Context-59 one)')
    p.add_argument('--model', default='ViT-B-16', help='open_clip model name')
    p.add_argument('--pretrained', default='openai', help='open_clip pretrained tag')
    p.add_argument('--checkpoint', help='local CLIP weights instead of the pretrained tag')
    p.add_argument('--clip-config', help='open_clip model-config JSON (custom architectures)')
    p.add_argument('--device', default='cpu')
    p.add_argument('--out-dir', required=True)
    return p.parse_args()


def collect(inputs: list[str]) -> list[Path]:
    files = []
    for item in inputs:
        if os.path.isdir(item):
            files += sorted(p for p in Path(item).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif any(c in item for c in '*?['):
            files += sorted(Path(p) for p in glob.glob(item))
        else:
            files.append(Path(item))
    if not files:
        raise SystemExit(f'no images found in {inputs}')
    return files


def main() -> int:
    args = parse_args()
    if args.vocab is not None:
        vocab = Vocabulary.from_list(args.vocab)
    elif args.vocab_file:
        vocab = Vocabulary.from_txt(args.vocab_file)
    else:
        vocab = Vocabulary.from_dataset(args.dataset)
    if args.clip_config:
        clip = dict(config_file=args.clip_config, checkpoint=args.checkpoint)
    else:
        clip = dict(model_name=args.model, pretrained=args.pretrained, checkpoint=args.checkpoint)
    files, out = collect(args.inputs), Path(args.out_dir)
    if args.task == 'det':
        if not args.config:
            raise ValueError('--task det needs --config (a detector config, e.g. configs/fvit/...) and --load-from')
        model, cfg = init_detector(args.config, checkpoint=args.load_from, vocabulary=vocab, device=args.device)

        def process(path: Path, image) -> None:
            pred = detect(model, cfg, image)
            drawn = draw_detections(image, pred, vocab.names, score_thr=args.score_thr)
            write_image_atomic(out / f'{path.stem}_det.png', drawn)
            write_json_atomic(out / f'{path.stem}_det.json', [
                dict(label=vocab.names[int(c)], score=round(float(s), 4), bbox=[round(float(v), 1) for v in b])
                for b, s, c in zip(pred.bboxes, pred.scores, pred.labels) if s >= args.score_thr])
    else:
        model, cfg = init_segmentor(args.config or find_config(args.mode), clip=clip, vocabulary=vocab,
                                    device=args.device)

        def process(path: Path, image) -> None:
            label = segment(model, cfg, image)['label'].cpu().numpy()
            write_image_atomic(out / f'{path.stem}_label.png', label.astype('uint8' if len(vocab) <= 256 else 'uint16'),
                               rgb=False)
            write_image_atomic(out / f'{path.stem}_overlay.png', overlay_segmentation(image, label, vocab.names))
    failed = []
    bar = progress_bar(len(files), 'images')
    for path in files:
        try:
            process(path, read_image(path))
        except ImageReadError as e:
            failed.append(str(e))
        bar.update()
    print(f'wrote results for {len(files) - len(failed)} images to {out}')
    for msg in failed:
        print(f'skipped: {msg}', file=sys.stderr)
    return 1 if failed else 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except (CheckpointError, PretrainedWeightsUnavailable, ValueError, FileNotFoundError) as e:
        print(f'error: {e}', file=sys.stderr)
        sys.exit(2)
