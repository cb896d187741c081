"""Constructor keywords that moved: answered with the new form instead of a bare ``unexpected keyword``."""
from __future__ import annotations

from typing import Any, Mapping


def refuse_moved(owner: str, given: Mapping[str, Any], moved: Mapping[str, str]) -> None:
    """Raise if ``given`` holds a keyword of ``moved`` (old name -> where it went) or any other keyword.

    Raises:
        ValueError: an old keyword, naming its new form.
        TypeError: an unknown keyword (as Python would).
    """
    old = [k for k in given if k in moved]
    if old:
        raise ValueError(f'{owner}: ' + '; '.join(f'{k}= moved: {moved[k]}' for k in old))
    if given:
        raise TypeError(f'{owner} got unexpected keyword arguments {sorted(given)}')
