"""Checkpoint I/O for mmengine: atomic writes, and safe (weights-only) loading of training checkpoints.

Importing this module (``import ovdense.models`` does) registers the ``ov_atomic_local`` file backend; it changes
nothing else in the process. On torch >= 2.6 ``torch.load`` is weights-only by default, and mmengine's loader cannot
read mmengine's own training checkpoints (its message hub pickles ``HistoryBuffer`` and numpy arrays): turning
``weights_only`` off would unpickle arbitrary code. :func:`weights_only_checkpoints` is the scope in which those few
safe types are accepted; ovdense enters it where it loads checkpoints (:class:`~ovdense.runner.OVRunner`'s
``load_checkpoint`` / ``resume``, :func:`~ovdense.apis.init_model`, the inferencers of :mod:`ovdense.inferencers`),
and code of yours (mmseg's or mmdet's inferencers) can too.
"""
from __future__ import annotations

import os
import pickle
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch
from mmengine.fileio import LocalBackend, register_backend


@register_backend('ov_atomic_local')
class OVAtomicLocalBackend(LocalBackend):
    """Local disk; ``put``/``put_text`` write next to the target and rename into place, so a run killed
    while saving a checkpoint leaves the previous file intact and never a truncated one.

    Use it for checkpoints with ``default_hooks.checkpoint.backend_args=dict(backend='ov_atomic_local')``.
    """

    def put(self, obj: bytes, filepath: str | Path) -> None:
        filepath = Path(filepath)
        filepath.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=filepath.parent, prefix=f'.{filepath.name}.', suffix='.tmp')
        try:
            with os.fdopen(fd, 'wb') as f:
                f.write(obj)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, filepath)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise

    def put_text(self, obj: str, filepath: str | Path, encoding: str = 'utf-8') -> None:
        self.put(obj.encode(encoding), filepath)


_STAT_METHODS = ('min', 'max', 'current', 'mean')


def _history_buffer_getattr(obj, name: str):
    """The one ``getattr`` an mmengine checkpoint needs: HistoryBuffer's statistics methods, pickled by
    name in the message hub. Anything else is refused (a free ``getattr`` would allow code execution)."""
    from mmengine.logging import HistoryBuffer
    if obj is HistoryBuffer and name in _STAT_METHODS:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(f'checkpoint asks for getattr({obj!r}, {name!r}); refused')


def checkpoint_safe_globals() -> list:
    """What ``torch.load(weights_only=True)`` must accept to read an mmengine training checkpoint:
    mmengine's HistoryBuffer (logged scalars), numpy arrays/scalars, and a restricted getattr."""
    import numpy as np
    from mmengine.logging import HistoryBuffer
    from numpy._core.multiarray import _reconstruct, scalar
    dtypes = [type(np.dtype(t)) for t in ('float64', 'float32', 'int64', 'int32', 'bool')]
    return [HistoryBuffer, _reconstruct, scalar, np.ndarray, np.dtype, *dtypes,
            (_history_buffer_getattr, 'builtins.getattr')]


@contextmanager
def weights_only_checkpoints() -> Iterator[None]:
    """Within it, weights-only loads (``torch.load``'s default, mmengine's loader included) also read mmengine's
    training checkpoints (:func:`checkpoint_safe_globals`); nothing else is accepted, and nothing outlives the scope.

    Example:
        >>> with weights_only_checkpoints():
        ...     inferencer = MMSegInferencer(model='my_config.py', weights='work_dirs/run/iter_8000.pth')
    """
    with torch.serialization.safe_globals(checkpoint_safe_globals()):
        yield


def load_checkpoint_file(filename: str | Path, map_location=None) -> dict:
    """A local checkpoint, weights-only, mmengine's training checkpoints included (:func:`weights_only_checkpoints`).

    Raises:
        FileNotFoundError: no such file.
    """
    filename = os.path.expanduser(str(filename))
    if not os.path.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    with weights_only_checkpoints():
        return torch.load(filename, map_location=map_location, weights_only=True)


def checkpoint_load_error(path: str | Path) -> str | None:
    """Why the checkpoint at ``path`` does not load weights-only (one line: an empty or truncated file, objects a
    weights-only load refuses, a missing file), or None when it loads."""
    try:
        load_checkpoint_file(path, map_location='cpu')
    except pickle.UnpicklingError as e:
        found = next((ln.strip() for ln in str(e).splitlines() if 'GLOBAL' in ln), str(e).strip()[:120])
        return f'it holds objects a weights-only load refuses ({found}): not a checkpoint of weights'
    except EOFError:
        return 'the file is empty or truncated'
    except Exception as e:  # noqa: BLE001 - truncated zips, foreign pickles, missing files...
        return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
    return None


def check_resumable(work_dir: str | Path, checkpoint: str | Path | None = None) -> str | None:
    """Before ``--resume``: the checkpoint to resume from (``checkpoint``, or the work dir's last one, as
    mmengine picks it) must load. A truncated or corrupt one raises an error naming it and the newest
    checkpoint of the work dir that does load, instead of a traceback from deep in the Runner. An empty
    ``last_checkpoint`` record (mmengine truncates, then writes it: a run killed in between leaves it empty, its
    checkpoints whole) resumes from the newest checkpoint that loads, and says so.

    Returns:
        the checkpoint to resume from; None when there is none (mmengine starts from the beginning).

    Raises:
        CheckpointError: the checkpoint does not load.
    """
    from mmengine.runner import find_latest_checkpoint

    from .clip import CheckpointError
    work = Path(work_dir)
    path = Path(checkpoint) if checkpoint is not None else None

    def newest_loading(exclude: Path | None = None) -> Path | None:
        found = sorted((p for p in work.glob('*.pth') if exclude is None or p.resolve() != exclude.resolve()),
                       key=lambda p: p.stat().st_mtime, reverse=True) if work.is_dir() else []
        return next((p for p in found if checkpoint_load_error(p) is None), None)

    if path is None:
        latest = find_latest_checkpoint(str(work)) if work.is_dir() else None
        if latest is None:
            return None  # nothing to resume from: mmengine starts from the beginning
        if not latest:
            newest = newest_loading()
            if newest is None:
                raise CheckpointError(f'cannot resume: {work / "last_checkpoint"} is empty and no checkpoint in '
                                      f'{work} loads')
            print(f'{work / "last_checkpoint"} is empty (its write was interrupted): resuming from the newest '
                  f'checkpoint that loads, {newest}', flush=True)
            return str(newest)
        path = Path(latest)

    error = checkpoint_load_error(path)
    if error is None:
        return str(path)
    good = newest_loading(exclude=path)
    hint = (f'the last good one is {good}: resume from it with --resume {good}' if good is not None
            else f'no other checkpoint in {work_dir} loads')
    raise CheckpointError(f'cannot resume: checkpoint {path} does not load ({error}); {hint}')
