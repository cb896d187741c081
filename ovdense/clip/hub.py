"""Pretrained weights and tokenizers from the hubs, offline-aware: a missing download fails at once with a message
saying what to do."""
from __future__ import annotations

import contextlib
import os
import socket
import threading
from typing import Any, Callable, Iterator

import torch


def _open_clip():
    import open_clip  # deferred: importing open_clip costs seconds
    return open_clip


class PretrainedWeightsUnavailable(RuntimeError):
    """Pretrained weights for a tag are neither cached locally nor downloadable."""


@contextlib.contextmanager
def _hub_offline_unless_reachable() -> Iterator[None]:
    """Hugging Face hub offline mode while the hub (``HF_ENDPOINT``, huggingface.co by default) cannot be reached:
    its files come from the cache."""
    from urllib.parse import urlparse

    from huggingface_hub import constants
    if _network_reachable(urlparse(constants.ENDPOINT).hostname or 'huggingface.co'):
        yield
        return
    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before


class LazyTokenizer:
    """A tokenizer made on first use (a Hugging Face one reads files, maybe from the network: building a model
    must not), whose failure names the tokenizer and what to do."""

    def __init__(self, factory: Callable[[], Any], *, name: str, source: str) -> None:
        self.factory, self.name, self.source = factory, name, source
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    def get(self) -> Any:
        with self._lock:
            if self._tokenizer is None:
                try:
                    with _hub_offline_unless_reachable():  # no network: the local cache at once, not 5 retries
                        self._tokenizer = self.factory()
                except ImportError as e:
                    raise PretrainedWeightsUnavailable(
                        f"the tokenizer of '{self.name}' ('{self.source}', a Hugging Face tokenizer) needs the "
                        f'transformers package ({e}); tools/install.sh installs it') from None
                except Exception as e:  # noqa: BLE001 - huggingface_hub / transformers raise many types offline
                    raise PretrainedWeightsUnavailable(
                        f"the tokenizer of '{self.name}' ('{self.source}' on the Hugging Face hub) is neither in the "
                        f'local cache nor downloadable ({type(e).__name__}: {str(e).splitlines()[0][:300]}). Fetch it '
                        f"where you have network (open_clip.get_tokenizer('{self.name}') caches it), or give a "
                        f"local tokenizer directory as text_cfg.hf_tokenizer_name in the model config") from None
        return self._tokenizer

    def __call__(self, texts: Any, context_length: int | None = None) -> torch.Tensor:
        tok = self.get()
        return tok(texts) if context_length is None else tok(texts, context_length)


def _network_reachable(host: str, timeout: float = 3.0) -> bool:
    """True when ``host`` resolves within ``timeout`` seconds (a DNS failure answers at once offline)."""
    result: list[bool] = []

    def probe() -> None:
        try:
            socket.getaddrinfo(host, 443)
            result.append(True)
        except OSError:
            result.append(False)

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout)
    return bool(result and result[0])


def resolve_pretrained(name: str, tag: str, *, cache_dir: str | None = None) -> str:
    """Local path of the weights for an open_clip (name, pretrained tag), downloading if possible.

    Raises:
        ValueError: unknown tag for this model (the message lists the valid ones).
        PretrainedWeightsUnavailable: not cached and no network; says how to pass a local file.
    """
    oc = _open_clip()
    cfg = oc.get_pretrained_cfg(name, tag)
    if not cfg:
        raise ValueError(f"unknown pretrained tag '{tag}' for '{name}'; valid tags: "
                         f"{oc.list_pretrained_tags_by_model(name)}")
    hub = cfg.get('hf_hub', '')
    url = cfg.get('url', '')
    if cfg.get('file'):
        return cfg['file']
    if hub:
        from huggingface_hub import hf_hub_download
        repo, filename = os.path.split(hub)
        filename = filename or 'open_clip_pytorch_model.bin'
        names = [filename.replace('.bin', '.safetensors').replace('.pth', '.safetensors'), filename]
        for fn in dict.fromkeys(names):
            try:
                return hf_hub_download(repo_id=repo, filename=fn, cache_dir=cache_dir, local_files_only=True)
            except Exception:  # noqa: BLE001 - not in the local cache
                pass
    elif url:
        local = os.path.join(cache_dir or os.path.expanduser('~/.cache/clip'), os.path.basename(url))
        if os.path.isfile(local):
            return local
    source = f'huggingface.co/{hub}' if hub else url
    host = 'huggingface.co' if hub else url.split('/')[2]
    how = (f"Download it where you have network (open_clip.create_model('{name}', pretrained='{tag}') "
           f"caches it) and pass the file with checkpoint=PATH (tools: --checkpoint PATH; it may be a "
           f".safetensors, a .pt/.pth state dict, or the OpenAI TorchScript archive).")
    if not _network_reachable(host):
        raise PretrainedWeightsUnavailable(
            f"pretrained weights '{name}' / '{tag}' are not cached locally and {host} cannot be reached "
            f"(no network). {how}")
    try:
        return oc.pretrained.download_pretrained(cfg, cache_dir=cache_dir)
    except Exception as e:  # noqa: BLE001
        raise PretrainedWeightsUnavailable(
            f"downloading pretrained weights '{name}' / '{tag}' from {source} failed ({e}). {how}") from None


# ------------------------------------------------------------------------------- templates
