"""What the command-line tools check before any work, so that a user's mistake costs one line naming it, not a
traceback after minutes of model loading."""
from __future__ import annotations

import argparse
import errno
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, NoReturn, Sequence

from mmengine.config import Config, DictAction


def fail(message: str) -> NoReturn:
    """Stop the tool with ``error: message`` (exit status 1)."""
    raise SystemExit(f'error: {message}')


def is_out_of_space(error: BaseException) -> bool:
    """The error is a full disk or an exhausted quota (ENOSPC / EDQUOT)."""
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)


@contextmanager
def out_of_space(where: str | os.PathLike, then: str) -> Iterator[None]:
    """Stop with one line when the disk fills up inside the block (``where`` is written to; ``then``: what the user
    does next and what is intact), instead of a traceback from deep in the writer."""
    try:
        yield
    except OSError as e:
        if not is_out_of_space(e):
            raise
        fail(f'no space left on the device writing {e.filename or where} ({os.strerror(e.errno)}): {then}')


class OptionsAction(DictAction):
    """mmengine's ``--cfg-options`` parsing, with ``key=value`` pairs required (a bare word is an argparse error)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Sequence[str],
                 option_string: str | None = None) -> None:
        bad = [v for v in values if '=' not in v or v.startswith('=')]
        if bad:
            parser.error(f'{option_string} takes key=value pairs, got {bad}')
        super().__call__(parser, namespace, values, option_string)


def renamed(new: str) -> type[argparse.Action]:
    """An argparse action for an option renamed to ``new`` (mmseg / mmdet's name): it still works for one release,
    with a warning naming the new form."""
    class Renamed(argparse._StoreAction):
        def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                     option_string: str | None = None) -> None:
            print(f'warning: {option_string} is deprecated and will be removed in the next release; use {new}',
                  file=sys.stderr)
            setattr(namespace, self.dest, values)
    return Renamed


def load_config(path: str, options: dict | None = None) -> Config:
    """The config at ``path`` with ``options`` merged; a missing or unparsable file is one line."""
    if not os.path.isfile(path):
        fail(f'config not found: {path}')
    try:
        cfg = Config.fromfile(path)
    except Exception as e:  # noqa: BLE001 - mmengine raises many kinds for a broken config
        fail(f'cannot read config {path}: {type(e).__name__}: {e}')
    if options:
        cfg.merge_from_dict(options)
    return cfg


def check_work_dir(path: str) -> None:
    """``path`` is or can become a writable folder."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        fail(f'--work-dir {path} is a file, not a folder')
    parent = next((q for q in [p, *p.parents] if q.exists()), Path('.'))
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        fail(f'--work-dir {path}: {parent} is not a writable folder')


def check_data_roots(cfg: Config, loaders: Sequence[str]) -> None:
    """The data root of each named dataloader in the config exists (else: which one, and ``--data-root``)."""
    for name in loaders:
        dataset = (cfg.get(name) or {}).get('dataset') or {}
        root = dataset.get('data_root')
        if root and not os.path.isdir(root):
            fail(f'data root of {name} not found: {root} (give the dataset folder with --data-root)')


def check_device(device: str) -> Any:
    """A ``torch.device`` this machine has, else one line listing what it has."""
    import torch
    have = ['cpu'] + ([f'cuda:{i}' for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else [])
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        fail(f"unknown device '{device}'; this machine has: {have}")
    if dev.type == 'cuda' and not torch.cuda.is_available():
        fail(f"device '{device}': no GPU here; this machine has: {have}")
    if dev.type not in ('cpu', 'cuda'):
        fail(f"device '{device}' is not supported; this machine has: {have}")
    return dev
