"""Evaluate a config: python tools/test.py CONFIG [CHECKPOINT] [--clip-checkpoint CLIP_WEIGHTS] [--data-root DIR] ...

As mmseg's and mmdet's tools/test.py: CHECKPOINT is the trained model (mmengine checkpoint; training-free configs
need none). Runs mmengine's Runner test loop (mmseg IoUMetric / mmdet CocoMetric per the config), prints the
table, and writes the metrics as JSON to WORK_DIR/metrics.json.
"""
import argparse
import os.path as osp

from ovdense.apis import clip_holder
from ovdense.cli import OptionsAction, check_data_roots, check_work_dir, fail, load_config, out_of_space, renamed
from ovdense.fileio import checkpoint_load_error
from ovdense.runner import build_runner
from ovdense.visualization import write_json_atomic


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description='ovdense test')
    p.add_argument('config')
    p.add_argument('checkpoint', nargs='?', help='the trained model (mmengine checkpoint), as mmseg / mmdet take it')
    p.add_argument('--clip-checkpoint', help='local CLIP weights (.safetensors/.pt) instead of the pretrained tag')
    p.add_argument('--clip-config', help='open_clip model-config JSON for --clip-checkpoint (custom architectures)')
    p.add_argument('--checkpoint', dest='clip_checkpoint', action=renamed('--clip-checkpoint'), help=argparse.SUPPRESS)
    p.add_argument('--load-from', action=renamed('the positional CHECKPOINT'),
                   help=argparse.SUPPRESS)
    p.add_argument('--data-root', help='dataset root (overrides the config)')
    p.add_argument('--work-dir', help='where logs and metrics.json go')
    p.add_argument('--show-dir', help='save colored prediction overlays into WORK_DIR/SHOW_DIR')
    p.add_argument('--max-images', type=int, help='evaluate only the first N images')
    p.add_argument('--cfg-options', nargs='+', action=OptionsAction, help='override config keys, key=value')
    p.add_argument('--launcher', choices=['none', 'pytorch'], default='none')
    p.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return p.parse_args()


def main() -> None:
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options)
    cfg.launcher = args.launcher
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        'work_dirs', osp.splitext(osp.basename(args.config))[0])
    holder = clip_holder(cfg.model)  # where the CLIP is named
    if args.clip_config:
        holder.clip = dict(config_file=args.clip_config)
    if args.clip_checkpoint:
        holder.clip = dict(holder.clip, checkpoint=args.clip_checkpoint)
    checkpoint = args.checkpoint or args.load_from
    if checkpoint:
        if not osp.isfile(checkpoint):
            fail(f'checkpoint not found: {checkpoint}')
        error = checkpoint_load_error(checkpoint)
        if error:
            fail(f'checkpoint {checkpoint} cannot be loaded: {error}')
        cfg.load_from = checkpoint
    for loader in ('test_dataloader', 'val_dataloader'):
        if args.data_root and loader in cfg:
            cfg[loader].dataset.data_root = args.data_root
        if args.max_images and loader in cfg:
            cfg[loader].dataset.indices = args.max_images
    check_work_dir(cfg.work_dir)
    check_data_roots(cfg, ['test_dataloader'])
    if args.show_dir:
        vis = cfg.default_hooks.setdefault('visualization', dict(type='SegVisualizationHook'))
        vis.update(draw=True, interval=1)
        cfg.visualizer = dict(type=cfg.get('visualizer', {}).get('type', 'SegLocalVisualizer'),
                              vis_backends=[dict(type='LocalVisBackend')], name='visualizer',
                              save_dir=osp.join(cfg.work_dir, args.show_dir))
    runner = build_runner(cfg)
    out = osp.join(cfg.work_dir, 'metrics.json')
    with out_of_space(cfg.work_dir, 'free space and run the test again (the metrics were not written)'):
        metrics = runner.test()
        write_json_atomic(out, {k: float(v) for k, v in metrics.items()})  # never a truncated metrics.json
    print(f'metrics written to {out}')


if __name__ == '__main__':
    main()
