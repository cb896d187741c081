"""Where the time of an inference goes: wall time and FLOPs of named stages, against this machine's matmul rate.

Used by :mod:`ovdense.benchmarks` (``tools/benchmark.py protocol`` / ``reference`` / ``scale``); nothing in the models
depends on it.
"""
from __future__ import annotations

import functools
import importlib
import os
import re
import sys
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from ovdense.ext import _ext


def matmul_gflops(n: int = 3072, *, repeat: int = 5) -> float:
    """This machine's fp32 matmul rate (GFLOP/s, best of ``repeat``) on (n, n) @ (n, n) with the current threads:
    the FLOP bound's denominator. The product is written into one output: a new 38 MB output per product is a fresh
    mapping whose page faults made the rate 300 or 420 GFLOP/s on one machine, by what the process had freed before."""
    a, b, c = torch.randn(n, n), torch.randn(n, n), torch.empty(n, n)
    torch.mm(a, b, out=c)  # warm-up
    best = float('inf')
    for _ in range(repeat):
        t = time.perf_counter()
        torch.mm(a, b, out=c)
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def _cpu_sdpa_flops(query_shape: torch.Size, key_shape: torch.Size, value_shape: torch.Size, *args: Any,
                    out_shape: Any = None, **kwargs: Any) -> int:
    """FLOPs of ``aten._scaled_dot_product_flash_attention_for_cpu`` (the CPU's fused attention), which torch's
    counter does not know: the same count as its GPU kernels (4 B H Nq Nk d)."""
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _pamr_step_flops(x: torch.Tensor, aff: torch.Tensor, *args: Any, out_val: Any = None, **kwargs: Any) -> int:
    """FLOPs of ``torch.ops.ovdense.pamr_step`` (a PAMR iteration on the CPU): a multiply-add per affinity, map and
    pixel."""
    return 2 * aff.numel() * x.shape[0]


_pamr_step_flops._get_raw = True

# what FlopCounterMode lacks or counts wrong
_FLOP_FORMULAS = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flops}
if _ext is not None:
    _FLOP_FORMULAS[torch.ops.ovdense.pamr_step] = _pamr_step_flops


@dataclass
class Stage:
    """One named stage: the methods timed (``(object, method name)``), what they took in total."""
    name: str
    methods: Sequence[tuple[Any, str]]
    seconds: float = 0.0
    calls: int = 0
    flops: int = 0
    _depth: int = field(default=0, repr=False)


class StageProfiler:
    """Wall time (and, within :meth:`counting_flops`, FLOPs) of named stages, each the outermost calls of some
    methods of some objects, while the profiler is entered (the methods are wrapped on the instances and put back
    on exit). Stages may nest (a VFM forward inside the backbone's); each is reported inclusive.

    Example:
        >>> prof = StageProfiler({'backbone': [(model.backbone, 'dense_features')], 'pamr': [(model.pamr, 'refine')]})
        >>> with prof:
        ...     inference_model(model, image)
        >>> prof.stages['backbone'].seconds
    """

    def __init__(self, stages: dict[str, Sequence[tuple[Any, str]]]) -> None:
        self.stages = {name: Stage(name, [(o, m) for o, m in methods if o is not None and hasattr(o, m)])
                       for name, methods in stages.items()}
        self._counter: FlopCounterMode | None = None
        self._stack: ExitStack | None = None

    def reset(self) -> None:
        for s in self.stages.values():
            s.seconds, s.calls, s.flops = 0.0, 0, 0

    def _wrap(self, stage: Stage, obj: Any, name: str) -> None:
        fn = getattr(obj, name)

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if stage._depth:
                return fn(*args, **kwargs)
            stage._depth += 1
            f0 = self._counter.get_total_flops() if self._counter is not None else 0
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                stage.seconds += time.perf_counter() - t
                stage.calls += 1
                if self._counter is not None:
                    stage.flops += self._counter.get_total_flops() - f0
                stage._depth -= 1

        setattr(obj, name, timed)
        self._stack.callback(delattr, obj, name)  # the class's method shows through again

    def __enter__(self) -> 'StageProfiler':
        self._stack = ExitStack()
        for stage in self.stages.values():
            for obj, name in stage.methods:
                self._wrap(stage, obj, name)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stack.close()
        self._stack = None

    @contextmanager
    def counting_flops(self) -> Iterator[FlopCounterMode]:
        """Count FLOPs (matmuls, convolutions, attention: torch's :class:`FlopCounterMode`; the CPU's fused attention
        as the GPU's, PAMR's CPU kernel by its multiply-adds) of every stage meanwhile; times measured meanwhile
        include the counter's overhead."""
        with FlopCounterMode(display=False, custom_mapping=_FLOP_FORMULAS) as counter:
            self._counter = counter
            try:
                yield counter
            finally:
                self._counter = None


def inference_stages(model: torch.nn.Module) -> dict[str, list[tuple[Any, str]]]:
    """The stages of an :class:`~ovdense.models.OVSegmentor` inference: the CLIP windows (the backbone's dense
    features, a VFM proxy inside them included), the VFM proxy's forward, PAMR (affinities, refinement);
    the rest of the inference is the text matching and post-processing."""
    method = getattr(model.backbone, 'method', None)
    pamr = getattr(model, 'pamr', None)
    return {'clip windows': [(model.backbone, 'dense_features')],
            'vfm': [(getattr(method, 'proxy', None), 'patch_features')],
            'pamr': [(pamr, 'affinity'), (pamr, 'refine'), (pamr, 'forward')]}


def find_reference_module(repo: str | Path, class_name: str) -> str:
    """The top-level module of a reference checkout that defines ``class_name`` (its registered segmentor).

    Raises:
        FileNotFoundError: no top-level ``.py`` file of ``repo`` defines it.
    """
    hits = sorted(p.stem for p in Path(repo).glob('*.py') if re.search(rf'^class {class_name}\b', p.read_text(
        errors='replace'), re.M))
    if not hits:
        raise FileNotFoundError(f'no top-level .py file of {repo} defines class {class_name} (the type its config names)')
    return hits[0]


@contextmanager
def inside(repo: str | Path) -> Iterator[None]:
    """The reference's working directory and import path (its configs name class files relative to its root)."""
    old_cwd, root = os.getcwd(), str(Path(repo).resolve())
    sys.path.insert(0, root)
    os.chdir(root)
    try:
        yield
    finally:
        os.chdir(old_cwd)
        sys.path.remove(root)


def build_reference(repo: str | Path, config: str | Path, weights: str | Path, **overrides: Any) -> torch.nn.Module:
    """A reference implementation's own segmentor, from its checkout and its config (mmengine format, e.g. SCLIP's /
    NACLIP's ``configs/cfg_voc21.py``), on the CPU with the CLIP ``weights`` (``clip_path``: the OpenAI-format state
    dict both sides load); ``overrides`` go to its model config."""
    from mmengine.config import Config
    from mmseg.registry import MODELS
    with inside(repo):
        cfg = Config.fromfile(str(config))
        importlib.import_module(find_reference_module('.', cfg.model.type))
        cfg.model.update(clip_path=str(Path(weights).resolve()), device='cpu', **overrides)
        model = MODELS.build(cfg.model).eval()
    model.cfg = cfg
    return model


def reference_predict(model: torch.nn.Module, image_path: str | Path) -> torch.Tensor:
    """(H, W) labels of the reference on one image through its own test pipeline (annotations dropped)."""
    import mmseg.datasets  # noqa: F401 - registers the transforms
    from mmcv.transforms import Compose
    from mmengine.dataset import pseudo_collate
    from mmseg.registry import TRANSFORMS
    pipeline = Compose([TRANSFORMS.build(t) for t in model.cfg.test_pipeline if t['type'] != 'LoadAnnotations'])
    data = pseudo_collate([pipeline(dict(img_path=str(image_path)))])
    with torch.no_grad():
        return model.test_step(data)[0].pred_sem_seg.data[0]


def profile_inference(model: torch.nn.Module, image: str | Path, *, repeat: int = 3,
                      gflops: float | None = None) -> dict[str, Any]:
    """Seconds, GFLOP and share of the FLOP bound of each stage (:func:`inference_stages`) of
    ``inference_model(model, image)``: after a warm-up call (the text encoded and cached), FLOPs counted in one call,
    seconds from the fastest of ``repeat`` timed calls; ``rest`` is everything outside the CLIP windows and PAMR (text matching, merging,
    resizing, post-processing, the data pipeline). The bound of a stage is its FLOPs at ``gflops`` (default: this
    machine's :func:`matmul_gflops`, measured now); share = bound / seconds."""
    from .apis import inference_model
    prof = StageProfiler(inference_stages(model))
    with prof, torch.no_grad():
        inference_model(model, str(image))  # warm-up: encodes (and caches) the text, which is not counted
        gflops = gflops or matmul_gflops()  # measured warm, between the model's calls
        prof.reset()
        with prof.counting_flops() as counter:
            inference_model(model, str(image))
        flops = {n: s.flops for n, s in prof.stages.items()}
        flops['rest'] = counter.get_total_flops() - flops['clip windows'] - flops['pamr']
        flops['total'] = counter.get_total_flops()
        best: tuple[float, dict[str, float]] | None = None
        for _ in range(repeat):
            prof.reset()
            t = time.perf_counter()
            inference_model(model, str(image))
            total = time.perf_counter() - t
            if best is None or total < best[0]:
                best = (total, {n: s.seconds for n, s in prof.stages.items()})
    total, seconds = best
    seconds['rest'] = total - seconds['clip windows'] - seconds['pamr']
    seconds['total'] = total
    stages = {}
    for name in ('clip windows', 'vfm', 'pamr', 'rest', 'total'):
        if name in ('vfm', 'pamr') and not prof.stages[name].methods:
            continue
        bound = flops[name] / 1e9 / gflops
        stages[name] = dict(seconds=round(seconds[name], 3), gflop=round(flops[name] / 1e9, 2),
                            bound_s=round(bound, 3), share_of_bound=round(bound / max(seconds[name], 1e-9), 3))
    return dict(matmul_gflops=round(gflops, 1), stages=stages)


def compare_with_reference(model: torch.nn.Module, reference: torch.nn.Module, image: str | Path, *,
                           repeat: int = 3) -> dict[str, Any]:
    """``inference_model(model, image)`` and the reference's own prediction (:func:`reference_predict`) alternated
    ``repeat`` times after a warm-up of each: the fastest seconds of each, their ratio (ovdense / reference) and the
    share of pixels where the labels agree."""
    from .apis import inference_model
    times: dict[str, list[float]] = {'ovdense': [], 'reference': []}
    with torch.no_grad():
        ours = inference_model(model, str(image)).pred_sem_seg.data[0]
        theirs = reference_predict(reference, image)
        for _ in range(repeat):
            for name, fn in (('ovdense', lambda: inference_model(model, str(image))),
                             ('reference', lambda: reference_predict(reference, image))):
                t = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t)
    if ours.shape != theirs.shape:
        raise ValueError(f'the label maps differ in size: ovdense {tuple(ours.shape)}, reference {tuple(theirs.shape)}')
    best = {k: min(v) for k, v in times.items()}
    return dict(ovdense_s=best['ovdense'], reference_s=best['reference'], ratio=best['ovdense'] / best['reference'],
                label_agreement=float((ours == theirs).float().mean()))
