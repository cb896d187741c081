"""Vocabularies: the classes to recognise, named at test time, and their text embeddings."""
from __future__ import annotations

import hashlib
import json
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

_VOCAB_DIR = Path(__file__).parent / 'vocabularies'


def known_datasets() -> list[str]:
    """Dataset names accepted by :meth:`Vocabulary.from_dataset`."""
    return sorted(p.stem for p in _VOCAB_DIR.glob('*.txt'))


_ZERO_WIDTH = dict.fromkeys(map(ord, '\u200b\u200c\u200d\u2060\ufeff\u00ad'))


def _normalize(name: str) -> str:
    """A class name in Unicode NFC without zero-width characters (or soft hyphens), trimmed."""
    if not isinstance(name, str):
        raise ValueError(f'class names are strings, got {type(name).__name__} {name!r}')
    return unicodedata.normalize('NFC', name).translate(_ZERO_WIDTH).strip()


@dataclass(frozen=True)
class Vocabulary:
    """An ordered set of classes, each with one or more names (synonyms).

    The first name of a class is its display name. How its other names (synonyms) make one class
    score is the text encoder's ``synonyms`` rule (:class:`ovdense.models.text.OVTextEncoder`).

    Attributes:
        classes: per class, its names.
        source: where it came from (for messages only).
    """
    classes: tuple[tuple[str, ...], ...]
    source: str = 'list'

    def __post_init__(self) -> None:
        # one spelling per name: Unicode NFC (a composed and a decomposed 'café' are one name), no zero-width
        # characters (an invisible name, or two names that look the same, would be distinct classes), trimmed
        object.__setattr__(self, 'classes', tuple(tuple(_normalize(n) for n in names) for names in self.classes))
        if not self.classes:
            raise ValueError(f'empty vocabulary ({self.source}): give at least one class name')
        # a class is a duplicate when its names (case-insensitive, as a set) are another's; classes that share a
        # name but not all are distinct (ADE-847: 'bag' and 'bag, handbag, pocketbook, purse')
        seen: dict[frozenset, int] = {}
        for i, names in enumerate(self.classes):
            if not names or any(not n for n in names):
                raise ValueError(f'empty class name in vocabulary ({self.source}) at class {i}')
            key = frozenset(n.lower() for n in names)
            if key in seen:
                raise ValueError(f"duplicate class name '{names[0]}' in vocabulary ({self.source}): "
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
