"""Zero-shot quality of a CLIP on the synthetic world (image level, and dense for every mode).

python tools/eval_synthetic.py --clip-config ovdense/assets/tinyclip_synthetic.json --checkpoint ovdense/assets/tinyclip_synthetic.safetensors
"""
import argparse
import json

import torch
from mmengine.config import Config

from ovdense.clip import build_clip
from ovdense.datasets.synthetic import NOVEL_CLASSES, OBJECT_CLASSES, STUFF_CLASSES
from ovdense.testing.synthetic_eval import dense_zero_shot, image_zero_shot
from ovdense.apis import find_config
from ovdense.models.methods import clip_only_methods


def method_of(name: str) -> dict | str:
    """The method config of ``configs/synthetic/{name}_tinyclip_synthetic-128.py`` (layer indices for the tiny CLIP),
    else the method's defaults."""
    try:
        return dict(Config.fromfile(str(find_config(f'{name}_tinyclip_synthetic-128'))).model.backbone.method)
    except ValueError:
        return name


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--clip-config', required=True)
    p.add_argument('--checkpoint', required=True, help='weights (.safetensors, or an mmengine training checkpoint)')
    p.add_argument('--num-images', type=int, default=100)
    p.add_argument('--modes', nargs='+', default=sorted(clip_only_methods()),
                   help="dense methods (short names); each with its synthetic config's knobs where one ships")
    p.add_argument('--out', help='write the results as JSON')
    args = p.parse_args()
    torch.manual_seed(0)
    clip = build_clip(config_file=args.clip_config, checkpoint=args.checkpoint)
    clip.load_weights()
    res = dict(image=image_zero_shot(clip))
    print(f"image-level zero-shot top-1 over {len(OBJECT_CLASSES)} object classes: {100 * res['image']['top1']:.1f}% "
          f"(chance {100 / len(OBJECT_CLASSES):.1f}%), on 1.5x box crops: {100 * res['image']['crop_top1']:.1f}% "
          f"(square windows: {100 * res['image']['crop_square_top1']:.1f}%), "
          f"image->text R@1: {100 * res['image']['retrieval_r1']:.1f}%")
    print(f"{'mode':10s} {'base':>6s} {'novel':>6s} {'stuff':>6s}  " + ' '.join(f'{c[:7]:>7s}' for c in OBJECT_CLASSES))
    for mode in args.modes:
        r = res[mode] = dense_zero_shot(clip, method_of(mode), num_images=args.num_images)
        cells = ' '.join(f"{r.get(f'IoU_{c}', float('nan')):7.1f}" for c in OBJECT_CLASSES)
        print(f"{mode:10s} {r['mIoU_base']:6.1f} {r['mIoU_novel']:6.1f} {r['mIoU_stuff']:6.1f}  {cells}")
    print(f'novel classes: {NOVEL_CLASSES}; stuff: {STUFF_CLASSES}')
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(res, f, indent=2)


if __name__ == '__main__':
    main()
