"""Train from a config: python tools/train.py CONFIG [--work-dir D] [--resume] [--amp] [--cfg-options k=v]

Multi-GPU / multi-process: tools/dist_train.sh CONFIG N (torchrun + mmengine DDP; gloo on CPU).
"""
import argparse
import os.path as osp


from ovdense.cli import OptionsAction, check_data_roots, check_work_dir, load_config, out_of_space
from ovdense.runner import build_runner


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description='ovdense train')
    p.add_argument('config')
    p.add_argument('--work-dir')
    p.add_argument('--resume', nargs='?', const='auto', help='resume from the latest (or the given) checkpoint')
    p.add_argument('--amp', action='store_true', help='mixed precision (GPU only; never bf16 on CPU)')
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
    check_work_dir(cfg.work_dir)
    check_data_roots(cfg, ['train_dataloader'])
    if args.amp:
        import torch
        if not torch.cuda.is_available():
            raise SystemExit('--amp needs a GPU: autocast on this CPU would be bf16, which is ~170x slower here')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.resume:
        from ovdense.fileio import check_resumable
        try:
            resume_from = check_resumable(cfg.work_dir, None if args.resume == 'auto' else args.resume)
        except ValueError as e:  # a corrupt checkpoint: name it and the last good one, no traceback
            raise SystemExit(f'error: {e}') from None
        cfg.resume, cfg.load_from = True, resume_from
    if args.launcher == 'pytorch':
        import torch
        if torch.cuda.is_available():
            cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'nccl'
        else:  # mmengine's init_dist and DDP wrapper assume a GPU per process: set both up for CPU
            import torch.distributed as dist
            dist.init_process_group('gloo')
            cfg.model_wrapper_cfg = dict(type='MMDistributedDataParallel', device_ids=None,
                                         broadcast_buffers=False, find_unused_parameters=False)
    with out_of_space(cfg.work_dir, 'free space, then --resume: it starts from the last checkpoint that loads'):
        build_runner(cfg).train()


if __name__ == '__main__':
    main()
