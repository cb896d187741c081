"""Vocabularies: the classes to recognise, named at test time, and their text embeddings."""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import torch

if TYPE_CHECKING:
    from .clip import CLIPModel
    from .progress import ProgressFn

_VOCAB_DIR = Path(__file__).parent / 'vocabularies'


def known_datasets() -> list[str]:
    """Dataset names accepted by :meth:`Vocabulary.from_dataset`."""
    return sorted(p.stem for p in _VOCAB_DIR.glob('*.txt'))


@dataclass(frozen=True)
class Vocabulary:
    """An ordered set of classes, each with one or more names (synonyms).

    The first name of a class is its display name. Synonyms are separate text queries whose
    scores are max-pooled into their class.

    Attributes:
        classes: per class, its names.
        source: where it came from (for messages only).
    """
    classes: tuple[tuple[str, ...], ...]
    source: str = 'list'

    def __post_init__(self) -> None:
        if not self.classes:
            raise ValueError(f'empty vocabulary ({self.source}): give at least one class name')
        seen: dict[str, int] = {}
        for i, names in enumerate(self.classes):
            if not names or any(not n for n in names):
                raise ValueError(f'empty class name in vocabulary ({self.source}) at class {i}')
            for n in names:
                key = n.lower()
                if key in seen:
                    raise ValueError(f"duplicate class name '{n}' in vocabulary ({self.source}): "
                                     f'classes {seen[key]} and {i}')
                seen[key] = i

    # ------------------------------------------------------------------ builders
    @classmethod
    def from_list(cls, names: Sequence[str | Sequence[str]], *, source: str = 'list') -> 'Vocabulary':
        """From class names. ``['sky', ['person', 'man']]`` or ``['sky', 'person, man']`` give 2 classes, the
        second with a synonym; a single string ``'sky, road'`` gives one class per name, and
        ``'sky, person | man'`` the same two classes (``|`` separates a class's synonyms)."""
        if isinstance(names, str):  # 'sky, road | street, car': classes by commas, synonyms by '|'
            return cls(tuple(tuple(s.strip() for s in n.split('|')) for n in names.split(',')), source=source)
        classes = []
        for entry in names:
            parts = entry.split(',') if isinstance(entry, str) else list(entry)
            classes.append(tuple(p.strip() for p in parts))
        return cls(tuple(classes), source=source)

    @classmethod
    def from_txt(cls, path: str | os.PathLike) -> 'Vocabulary':
        """From a text file: one class per line, synonyms separated by commas; blank lines skipped."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f'vocabulary file not found: {path}')
        lines = [ln for ln in path.read_text(encoding='utf-8').splitlines() if ln.strip()]
        return cls.from_list(lines, source=str(path))

    @classmethod
    def from_dataset(cls, name: str) -> 'Vocabulary':
        """A standard benchmark's classes (e.g. ``'voc21'``, ``'ade20k'``, ``'coco80'``, ``'lvis'``)."""
        key = name.lower().replace('-', '').replace('_', '')
        for stem in known_datasets():
            if stem.replace('_', '') == key:
                return cls.from_txt(_VOCAB_DIR / f'{stem}.txt')
        raise ValueError(f"unknown dataset vocabulary '{name}'; valid: {known_datasets()}")

    @classmethod
    def coerce(cls, value: 'Vocabulary | str | Sequence[str | Sequence[str]] | dict') -> 'Vocabulary':
        """Accept a Vocabulary, a config dict (``dict(dataset=...)``, ``dict(file=...)``,
        ``dict(names=[...])``) or a list of names."""
        if isinstance(value, Vocabulary):
            return value
        if isinstance(value, dict):
            if set(value) == {'dataset'}:
                return cls.from_dataset(value['dataset'])
            if set(value) == {'file'}:
                return cls.from_txt(value['file'])
            if set(value) == {'names'}:
                return cls.from_list(value['names'])
            raise ValueError(f"vocabulary dict needs exactly one of keys 'dataset', 'file', 'names'; got {sorted(value)}")
        return cls.from_list(value)

    # ---------------------------------------------------------------- properties
    def __len__(self) -> int:
        return len(self.classes)

    @property
    def names(self) -> list[str]:
        """Display name of each class."""
        return [c[0] for c in self.classes]

    @property
    def queries(self) -> list[str]:
        """All names, flattened: the text queries."""
        return [n for c in self.classes for n in c]

    @property
    def query_to_class(self) -> torch.Tensor:
        """(Q,) int64: the class of each query."""
        return torch.tensor([i for i, c in enumerate(self.classes) for _ in c], dtype=torch.long)

    @property
    def fingerprint(self) -> str:
        """Stable hash of the classes and their names (order matters)."""
        return hashlib.sha1(json.dumps(self.classes).encode()).hexdigest()[:16]


class TextEmbeddingCache:
    """Text embeddings of (model, vocabulary, templates), cached in memory and optionally on disk.

    Each query's embedding is the L2-normalised mean over templates of the L2-normalised
    embeddings of the filled-in templates (the protocol of CLIP zero-shot, SCLIP, ClearCLIP...).

    Args:
        cache_dir: folder for ``.safetensors`` files keyed by fingerprint, or None for memory only.
        batch_size: prompts encoded per text-tower forward.
    """

    def __init__(self, cache_dir: str | os.PathLike | None = None, *, batch_size: int = 256) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.batch_size = batch_size
        self._memory: dict[str, torch.Tensor] = {}

    @staticmethod
    def key(clip: 'CLIPModel', vocabulary: Vocabulary, templates: Sequence[str]) -> str:
        h = hashlib.sha1()
        for part in (clip.text_fingerprint(), vocabulary.fingerprint, json.dumps(list(templates))):
            h.update(part.encode())
        return h.hexdigest()[:24]

    def get(self, clip: 'CLIPModel', vocabulary: Vocabulary, templates: Sequence[str], *,
            progress: 'ProgressFn | None' = None) -> torch.Tensor:
        """(Q, D) float32 normalised query embeddings, Q = len(vocabulary.queries); ``progress`` gets
        ``('text', done, total)`` while they are encoded (not when cached)."""
        key = self.key(clip, vocabulary, templates)
        if key in self._memory:
            return self._memory[key]
        path = self.cache_dir / f'text_{key}.safetensors' if self.cache_dir else None
        if path is not None and path.is_file():
            from safetensors.torch import load_file
            emb = load_file(str(path))['embeddings']
        else:
            emb = encode_queries(clip, vocabulary.queries, templates, batch_size=self.batch_size, progress=progress)
            if path is not None:
                from safetensors.torch import save_file
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix('.tmp')
                save_file({'embeddings': emb.contiguous()}, str(tmp))
                os.replace(tmp, path)  # atomic: a killed run never leaves a half-written cache file
        self._memory[key] = emb
        return emb


@torch.no_grad()
def encode_queries(clip: 'CLIPModel', queries: Sequence[str], templates: Sequence[str], *,
                   batch_size: int = 256, progress: 'ProgressFn | None' = None) -> torch.Tensor:
    """(Q, D) template-averaged, normalised text embeddings.

    Queries are encoded a group at a time (``batch_size // len(templates)`` queries, all their
    templates, at most ``batch_size`` prompts per text-tower forward) and averaged at once, so memory
    holds (Q, D), never (Q x templates, D): LVIS's 1,203 classes x 80 templates is 96,240 prompts.
    ``progress`` gets ``('text', done, total)`` after each group; without it a progress bar (or log
    lines) is shown when it takes more than 20 forwards.
    """
    if not templates:
        raise ValueError('no prompt templates given')
    group = max(batch_size // len(templates), 1)
    groups = [queries[i:i + group] for i in range(0, len(queries), group)]
    bar = None
    if progress is None and len(groups) * -(-len(templates) * group // batch_size) > 20:
        from .progress import progress_bar
        bar = progress_bar(len(queries), 'text embeddings')
    out = []
    for qs in groups:
        prompts = [t.format(q) if '{}' in t else f'{t} {q}' for q in qs for t in templates]
        emb = torch.cat([clip.encode_text(prompts[i:i + batch_size], normalize=True)
                         for i in range(0, len(prompts), batch_size)])
        out.append(emb.float().view(len(qs), len(templates), -1).mean(1))
        if bar is not None:
            bar.update(len(qs))
        if progress is not None:
            progress('text', min(len(out) * group, len(queries)), len(queries))
    return torch.nn.functional.normalize(torch.cat(out), dim=-1)
