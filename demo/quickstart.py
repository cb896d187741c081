"""Offline quickstart: zero-shot segmentation of unseen classes with the shipped tiny CLIP.

python demo/quickstart.py [--mode naclip] [--out work_dirs/quickstart]

Generates held-out scenes of the synthetic world, segments them with a training-free dense mode
(vocabulary: 4 stuff + 12 object classes, the 3 novel ones included), prints mIoU for base objects,
novel objects and stuff, and writes overlays (ground truth | prediction) of the last batch of
scenes (8) to OUT/overlays.
"""
import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--mode', default='naclip', choices=['vanilla', 'maskclip', 'sclip', 'clearclip', 'naclip'])
    p.add_argument('--out', default='work_dirs/quickstart')
    p.add_argument('--num-images', type=int, default=200)
    p.add_argument('--seed', type=int, default=2000, help='world seed of the held-out scenes')
    args = p.parse_args()
    assets = REPO / 'ovdense' / 'assets'
    if not (assets / 'tinyclip_synthetic.safetensors').is_file():
        print(f'error: the shipped tiny CLIP is missing from {assets} (a partial checkout?)', file=sys.stderr)
        return 2

    from mmengine.config import Config

    from ovdense.datasets.synthetic import BASE_CLASSES, NOVEL_CLASSES, STUFF_CLASSES, WorldConfig, export
    from ovdense.runner import build_runner

    out = Path(args.out).resolve()
    print(f'[1/2] generating {args.num_images} held-out scenes (seed {args.seed})')
    data = export(out / 'data', split='val', num_images=args.num_images, seed=args.seed, cfg=WorldConfig())
    cfg = Config.fromfile(str(REPO / 'configs' / 'synthetic' / f'{args.mode}_tinyclip_synthetic-128.py'))
    cfg.work_dir = str(out)
    cfg.log_level = 'WARNING'
    cfg.test_dataloader.dataset.data_root = str(data)
    batches = -(-args.num_images // cfg.test_dataloader.batch_size)
    # mmseg's hook draws every image of every interval-th batch: draw the last batch only
    cfg.default_hooks.visualization = dict(type='SegVisualizationHook', draw=True, interval=batches)
    cfg.visualizer = dict(type='SegLocalVisualizer', vis_backends=[dict(type='LocalVisBackend')],
                          name='visualizer', save_dir=str(out / 'overlays'), alpha=0.6)
    print(f'\n[2/2] zero-shot segmentation, mode {args.mode}, vocabulary of {len(STUFF_CLASSES) + 12} classes')
    metrics = {k: float(v) for k, v in build_runner(cfg).test().items()}

    def mean(names):
        vals = [metrics[f'IoU.{c}'] for c in names if metrics.get(f'IoU.{c}') == metrics.get(f'IoU.{c}')]
        return sum(vals) / len(vals) if vals else float('nan')

    report = dict(mode=args.mode, mIoU_base=mean(BASE_CLASSES), mIoU_novel=mean(NOVEL_CLASSES),
                  mIoU_stuff=mean(STUFF_CLASSES), mIoU_all=metrics['mIoU'],
                  per_class={c: metrics[f'IoU.{c}'] for c in (*STUFF_CLASSES, *BASE_CLASSES, *NOVEL_CLASSES)})
    print(f"\nmIoU  base objects {report['mIoU_base']:.1f}  |  novel objects {report['mIoU_novel']:.1f} "
          f"({', '.join(NOVEL_CLASSES)})  |  stuff {report['mIoU_stuff']:.1f}  |  all {report['mIoU_all']:.1f}")
    print('per class: ' + ', '.join(f'{c} {v:.1f}' for c, v in report['per_class'].items()))
    (out / 'quickstart.json').write_text(json.dumps(report, indent=2))
    print(f'overlays (ground truth | prediction): {out / "overlays"}; numbers: {out / "quickstart.json"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
