"""An mmengine file backend whose writes are atomic (temporary file + rename)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

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
