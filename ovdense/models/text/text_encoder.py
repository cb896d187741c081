"""The text side of every ovdense model: vocabulary, prompts, synonyms, background, cached embeddings."""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from ...clip import CLIPModel, load_pending_weights
from ...progress import ProgressFn
from ...registry import register
from ...vocabulary import Vocabulary

SYNONYM_RULES = ('max', 'mean', 'first')
BACKGROUND_KINDS = ('learnt',)
MEMORY_ENTRIES = 16  # cached (weights, vocabulary, templates) embeddings kept in memory
# prompts per text-tower forward: one query with OpenAI's 80 templates; ViT-B/16's text tower peaks 0.23 GB above its
# weights then, 0.44 GB at 256, in the same time
BATCH_SIZE = 80


@dataclass(frozen=True)
class ClassEmbeddings:
    """What a head receives: the vocabulary's text embeddings and how its names make classes.

    Attributes:
        vocabulary: the classes.
        queries: (Q, D) L2-normalised embeddings, one per text query.
        query_to_class: (Q,) int64, the class of each query (non-decreasing).
        synonyms: the rule that made the queries (:data:`SYNONYM_RULES`).
        background: (N_bg, D) L2-normalised background embeddings (fixed names or learnt), or None.
        logit_scale: ``exp(logit_scale)`` of the CLIP that embedded them (its own temperature).
        logit_bias: the bias of that CLIP's sigmoid match (SigLIP), or None (CLIPs trained with a softmax).
    """
    vocabulary: Vocabulary
    queries: torch.Tensor
    query_to_class: torch.Tensor
    synonyms: str
    background: torch.Tensor | None = None
    logit_scale: float | None = None
    logit_bias: float | None = None

    @property
    def num_classes(self) -> int:
        return len(self.vocabulary)

    def reduce(self, scores: torch.Tensor, dim: int = -1) -> torch.Tensor:
        """Query scores (..., Q, ...) along ``dim`` -> class scores (..., K, ...): the max over each class's
        queries (the identity when every class has one query, as with ``synonyms='mean'``)."""
        return reduce_synonyms(scores, self.query_to_class, self.num_classes, dim=dim)


def reduce_synonyms(scores: torch.Tensor, query_to_class: torch.Tensor, num_classes: int, *,
                    dim: int = -1) -> torch.Tensor:
    """(..., Q, ...) query scores -> (..., K, ...) class scores along ``dim``: the max over each class's queries."""
    if scores.shape[dim] != query_to_class.shape[0]:
        raise ValueError(f'{scores.shape[dim]} scores along dim {dim}, {query_to_class.shape[0]} queries')
    if query_to_class.shape[0] == num_classes:
        return scores
    dim = dim % scores.dim()
    shape = [1] * scores.dim()
    shape[dim] = -1
    index = query_to_class.to(scores.device).view(shape).expand_as(scores)
    out_shape = list(scores.shape)
    out_shape[dim] = num_classes
    return scores.new_full(out_shape, float('-inf')).scatter_reduce(dim, index, scores, 'amax')


class TextEmbeddingCache:
    """Template-averaged query embeddings of (text weights, vocabulary, templates), in memory and optionally
    on disk. The key contains :meth:`CLIPModel.text_fingerprint`, which follows the weights really in the
    model (refreshed after any load or in-place change), so a cached entry is never stale.

    Args:
        cache_dir: folder for ``.safetensors`` files, or None for memory only.
        batch_size: prompts per text-tower forward (:data:`BATCH_SIZE` by default).
    """

    def __init__(self, cache_dir: str | os.PathLike | None = None, *, batch_size: int = BATCH_SIZE) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.batch_size = batch_size
        self._memory: OrderedDict[str, torch.Tensor] = OrderedDict()

    @staticmethod
    def key(clip: CLIPModel, queries: Sequence[str], templates: Sequence[str]) -> str:
        h = hashlib.sha1()
        for part in (clip.text_fingerprint(), json.dumps(list(queries)), json.dumps(list(templates))):
            h.update(part.encode())
        return h.hexdigest()[:24]

    def get(self, clip: CLIPModel, queries: Sequence[str], templates: Sequence[str], *,
            progress: ProgressFn | None = None) -> torch.Tensor:
        """(Q, D) float32 normalised embeddings of ``queries``; ``progress`` gets ``('text', done, total)``
        while they are encoded (not when cached)."""
        key = self.key(clip, queries, templates)
        if key in self._memory:
            self._memory.move_to_end(key)
            return self._memory[key]
        path = self.cache_dir / f'text_{key}.safetensors' if self.cache_dir else None
        if path is not None and path.is_file():
            from safetensors.torch import load_file
            emb = load_file(str(path))['embeddings']
        else:
            emb = encode_queries(clip, queries, templates, batch_size=self.batch_size, progress=progress)
            if path is not None:
                from safetensors.torch import save_file
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix('.tmp')
                save_file({'embeddings': emb.contiguous()}, str(tmp))
                os.replace(tmp, path)  # atomic: a killed run never leaves a half-written cache file
        self._memory[key] = emb
        while len(self._memory) > MEMORY_ENTRIES:  # the oldest (weights, vocabulary) pairs go first
            self._memory.popitem(last=False)
        return emb


@torch.no_grad()
def encode_queries(clip: CLIPModel, queries: Sequence[str], templates: Sequence[str], *,
                   batch_size: int = BATCH_SIZE, progress: ProgressFn | None = None) -> torch.Tensor:
    """(Q, D) template-averaged, normalised text embeddings: per query the L2-normalised mean over
    templates of the L2-normalised embeddings of the filled-in templates (CLIP zero-shot, SCLIP, ...).

    Queries are encoded a group at a time (``batch_size // len(templates)`` queries, all their templates,
    at most ``batch_size`` prompts per forward) and averaged at once, so memory holds (Q, D), never
    (Q x templates, D). ``progress`` gets ``('text', done, total)`` after each group; without it a
    progress bar is shown when it takes more than 20 forwards.
    """
    if not templates:
        raise ValueError('no prompt templates given')
    group = max(batch_size // len(templates), 1)
    groups = [queries[i:i + group] for i in range(0, len(queries), group)]
    bar = None
    if progress is None and len(groups) * -(-len(templates) * group // batch_size) > 20:
        from ...progress import progress_bar
        bar = progress_bar(len(queries), 'text embeddings')
    out = []
    warned: set[str] = set()
    for qs in groups:
        prompts = [t.format(q) if '{}' in t else f'{t} {q}' for q in qs for t in templates]
        embs = []
        for i in range(0, len(prompts), batch_size):
            tokens = clip.tokenize(prompts[i:i + batch_size])
            for j in torch.nonzero(tokens[:, -1] != 0).flatten().tolist():  # filled the context: cut
                name = qs[(i + j) // len(templates)]
                if name not in warned:
                    warned.add(name)
                    warnings.warn(f"class name '{name[:60]}{'...' if len(name) > 60 else ''}' ({len(name)} "
                                  f'characters) is longer than the text context of {tokens.shape[1]} tokens: '
                                  'CLIP reads it cut', stacklevel=2)
            embs.append(clip.encode_text(tokens, normalize=True))
        emb = torch.cat(embs)
        out.append(emb.float().view(len(qs), len(templates), -1).mean(1))
        if bar is not None:
            bar.update(len(qs))
        if progress is not None:
            progress('text', min(len(out) * group, len(queries)), len(queries))
    return F.normalize(torch.cat(out), dim=-1)


def differentiable_queries(clip: CLIPModel, queries: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
    """(Q, D) as :func:`encode_queries`, with autograd through the text tower (training a text tower)."""
    prompts = [t.format(q) if '{}' in t else f'{t} {q}' for q in queries for t in templates]
    emb = clip.encode_text(clip.tokenize(prompts), normalize=True)
    return F.normalize(emb.float().view(len(queries), len(templates), -1).mean(1), dim=-1)


@register('MODELS')
class OVTextEncoder(BaseModule):
    """The one text side of ovdense models: owns the vocabulary, the prompt templates, the synonym rule,
    optional background embeddings and the embedding cache, and encodes with the text tower of the CLIP it
    is given (the model's own: never a second CLIP). Models call it and pass the
    :class:`ClassEmbeddings` to their heads as arguments.

    Synonym rule (``synonyms``), one knob for every family:
        ``'max'`` (default): every name of a class is a text query; a class scores the max over its names
        of whatever the consumer computes (probabilities after a softmax over all names in the training-free
        segmentors, as SCLIP / ClearCLIP / NACLIP; cosine in region classification; logits in trained heads).
        ``'mean'``: one query per class, the normalised mean of its names' embeddings (ViLD / Detic style).
        ``'first'``: one query per class, its first name (CAT-Seg: the text before the first ", ").

    Args:
        vocabulary: the classes (:meth:`Vocabulary.coerce`: a Vocabulary, list, ``dict(dataset=...)``,
            ``dict(file=...)``, ``dict(names=...)``), or None to set later (``set_vocabulary``).
        templates: prompt templates (strings with ``{}``) or a set name of :func:`ovdense.clip.prompt_templates`.
        synonyms: synonym rule, one of :data:`SYNONYM_RULES`.
        background: None, ``'learnt'`` (one learnt embedding, F-ViT) or names whose embeddings (with the
            templates) are the background.
        num_contexts: learnt context tokens inserted after the start token of every prompt (CoOp /
            DenseCLIP; 0: plain templates). With contexts, names are prompted bare (no templates) and
            embeddings are recomputed on every call (they train).
        context_length: tokens per name with contexts (DenseCLIP: 5).
        context_width: token-embedding width of the text tower (needed with contexts).
        embed_dim: joint embedding dimension (needed with ``background='learnt'``).
        cache_dir: folder to cache embeddings on disk (None: memory only).
        batch_size: prompts per text-tower forward (:data:`BATCH_SIZE` by default).
        trainable: the text tower trains with the model (CAT-Seg fine-tunes its attention): in training mode with
            gradients on, embeddings are computed with autograd (never cached); otherwise cached as always (the
            cache key hashes the text weights as they are, so fine-tuned weights never meet stale embeddings).
    """

    def __init__(self, vocabulary: Any = None, *, templates: str | Sequence[str] = 'openai', synonyms: str = 'max',
                 background: str | Sequence[str] | None = None, num_contexts: int = 0,
                 context_length: int | None = None, context_width: int | None = None, embed_dim: int | None = None,
                 cache_dir: str | None = None, batch_size: int = BATCH_SIZE, trainable: bool = False,
                 init_cfg: dict | None = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.trainable = trainable
        if synonyms not in SYNONYM_RULES:
            raise ValueError(f"unknown synonym rule '{synonyms}'; valid: {list(SYNONYM_RULES)}")
        if isinstance(background, str) and background not in BACKGROUND_KINDS:
            raise ValueError(f"unknown background '{background}'; valid: None, {list(BACKGROUND_KINDS)} or a list "
                             'of background names')
        if isinstance(templates, str):
            from ...clip import prompt_templates
            prompt_templates(templates)  # validates the name
        elif not templates:
            raise ValueError('no prompt templates given')
        self.templates = templates
        self.synonyms = synonyms
        self.background_names = Vocabulary.coerce(list(background)).queries if (
            background is not None and not isinstance(background, str)) else None
        self.background = None
        if background == 'learnt':
            if embed_dim is None:
                raise ValueError("background='learnt' needs embed_dim")
            self.background = nn.Parameter(torch.randn(embed_dim) * embed_dim ** -0.5)
        self.contexts = None
        self.context_length = context_length
        if num_contexts:
            if context_width is None or context_length is None:
                raise ValueError('learnt contexts need context_width and context_length')
            if synonyms != 'max':
                raise ValueError("learnt contexts prompt every name: synonyms must be 'max'")
            self.contexts = nn.Parameter(nn.init.trunc_normal_(torch.empty(1, num_contexts, context_width)))
        self.cache = TextEmbeddingCache(cache_dir, batch_size=batch_size)
        self._background_cache = TextEmbeddingCache(batch_size=batch_size)
        self._vocabulary = Vocabulary.coerce(vocabulary) if vocabulary is not None else None

    # -------------------------------------------------------------- vocabulary
    @property
    def vocabulary(self) -> Vocabulary:
        if self._vocabulary is None:
            raise ValueError('no vocabulary: give text_encoder=dict(vocabulary=...) in the config, '
                             'call set_vocabulary() or pass vocabulary= to inference_model()')
        return self._vocabulary

    @property
    def has_vocabulary(self) -> bool:
        return self._vocabulary is not None

    def set_vocabulary(self, vocabulary: Any) -> None:
        """Change the classes (no rebuild; embeddings are computed at the next call, or taken from the cache)."""
        self._vocabulary = Vocabulary.coerce(vocabulary)

    def prompt_templates(self) -> tuple[str, ...]:
        if isinstance(self.templates, str):
            from ...clip import prompt_templates
            return prompt_templates(self.templates)
        return tuple(self.templates)

    # ------------------------------------------------------------------ encode
    def forward(self, clip: CLIPModel, vocabulary: Any = None, *,
                progress: ProgressFn | None = None) -> ClassEmbeddings:
        """The class embeddings of ``vocabulary`` (default: the encoder's own) with ``clip``'s text tower,
        on its device.

        Args:
            clip: the model's CLIP.
            vocabulary: classes for this call only.
            progress: gets ``('text', done, total)`` while embeddings are encoded.
        """
        vocab = self.vocabulary if vocabulary is None else Vocabulary.coerce(vocabulary)
        device = clip.logit_scale.device
        names = vocab.queries
        if self.synonyms == 'first':  # the first query of each class (query_to_class is non-decreasing)
            first = torch.searchsorted(vocab.query_to_class, torch.arange(len(vocab)))
            names = [vocab.queries[i] for i in first.tolist()]
        if self.trainable and self.training and torch.is_grad_enabled():
            queries = differentiable_queries(clip, names, self.prompt_templates())
        elif self.contexts is not None:
            queries = F.normalize(self.encode_with_contexts(clip, vocab.queries), dim=-1)
        else:
            queries = self.cache.get(clip, names, self.prompt_templates(), progress=progress).to(device)
        q2c = torch.arange(len(vocab), device=device) if self.synonyms == 'first' else vocab.query_to_class.to(device)
        if self.synonyms == 'mean' and queries.shape[0] != len(vocab):
            queries = F.normalize(torch.zeros(len(vocab), queries.shape[1], device=device,
                                              dtype=queries.dtype).index_add_(0, q2c, queries), dim=-1)
            q2c = torch.arange(len(vocab), device=device)
        background = None
        if self.background is not None:
            background = F.normalize(self.background, dim=0)[None].to(device)
        elif self.background_names is not None:
            background = self._background_cache.get(clip, self.background_names, self.prompt_templates()).to(device)
        bias = clip.logit_bias
        return ClassEmbeddings(vocab, queries, q2c, self.synonyms, background,
                               float(clip.logit_scale.detach().float().exp()),
                               None if bias is None else float(bias.detach().float()))

    def encode_with_contexts(self, clip: CLIPModel, names: Sequence[str]) -> torch.Tensor:
        """(N, D) unnormalised embeddings of ``names`` tokenised to ``context_length`` tokens with the learnt
        contexts inserted after the start token (DenseCLIP's prompting; differentiable in the contexts)."""
        tokens = clip.tokenize(names, context_length=self.context_length)
        x = clip.embed_tokens(tokens)
        ctx = self.contexts.expand(len(tokens), -1, -1).to(x.dtype)
        x = torch.cat([x[:, :1], ctx, x[:, 1:]], 1)
        return clip.encode_text_embeddings(x, tokens.argmax(-1) + ctx.shape[1])


class TextSideMixin:
    """The vocabulary interface of every ovdense model, delegated to its ``text_encoder``
    (:class:`OVTextEncoder`); the model provides ``text_clip``, the CLIP whose text tower embeds."""

    text_encoder: OVTextEncoder

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # every mmengine entry (train_step / val_step / test_step, hence the OpenMMLab inferencers) calls the model
        self.ready()
        return super().__call__(*args, **kwargs)

    def ready(self) -> None:
        """Before running: CLIP / VFM weights named in the config and never loaded (no ``init_weights``, no
        checkpoint holding them) are loaded instead of running random, and the data preprocessor's statistics are
        checked against the CLIP's (:func:`check_input_stats`, once)."""
        load_pending_weights(self)
        if not getattr(self, '_input_stats_checked', False):
            check_input_stats(getattr(self, 'data_preprocessor', None), self.text_clip, type(self).__name__)
            self._input_stats_checked = True

    def val_step(self, data: Any) -> list:
        return self._name_classes(super().val_step(data))

    def test_step(self, data: Any) -> list:
        return self._name_classes(super().test_step(data))

    def _name_classes(self, samples: list) -> list:
        """Each prediction carries the names of the classes it was made in (``metainfo['classes']``: the call's
        vocabulary, else the model's), which :class:`~ovdense.visualizer.OVSegLocalVisualizer` draws."""
        names = self.label_names(self.sample_vocabulary(samples) or self.vocabulary)
        for sample in samples:
            sample.set_metainfo(dict(classes=names))
        return samples

    @property
    def text_clip(self) -> CLIPModel:
        raise NotImplementedError

    @property
    def vocabulary(self) -> Vocabulary:
        """The model's classes."""
        return self.text_encoder.vocabulary

    def set_vocabulary(self, vocabulary: Any) -> None:
        """Change the classes: no rebuild, no retraining; embeddings come from the cache when seen before."""
        self.text_encoder.set_vocabulary(vocabulary)

    def class_embeddings(self, vocabulary: Any = None, *, progress: ProgressFn | None = None) -> ClassEmbeddings:
        """The :class:`ClassEmbeddings` of ``vocabulary`` (default: the model's) with the model's own CLIP."""
        return self.text_encoder(self.text_clip, vocabulary, progress=progress)

    def label_names(self, vocabulary: Vocabulary) -> tuple[str, ...]:
        """The name of each label the model predicts in ``vocabulary`` (its names; a model that adds labels, e.g. a
        background, says so)."""
        return tuple(vocabulary.names)

    @property
    def dataset_meta(self) -> dict:
        """``classes`` (the names of the labels in the model's vocabulary) and a ``palette``, for the OpenMMLab
        inferencers and visualisers, which read ``model.dataset_meta``."""
        from ...visualization import palette
        names = self.label_names(self.vocabulary)
        return dict(classes=names, palette=[tuple(int(v) for v in c) for c in palette(len(names))])

    @dataset_meta.setter
    def dataset_meta(self, meta: dict | None) -> None:
        # MMSegInferencer / DetInferencer assign the checkpoint's meta, or Cityscapes' / COCO's names without one;
        # the labels index the vocabulary whatever they assign, so the names shown stay the vocabulary's
        given = tuple((meta or {}).get('classes') or ())
        if given and given != self.label_names(self.vocabulary):
            from mmengine.logging import print_log
            print_log(f'{type(self).__name__} predicts its vocabulary ({len(self.vocabulary)} classes: '
                      f'{self.vocabulary.names[:5]}...), not the {len(given)} names assigned to dataset_meta '
                      f'({given[:5]}...): set_vocabulary() changes the classes', logger='current', level=30)

    @staticmethod
    def sample_vocabulary(data_samples: Sequence[Any] | None) -> Vocabulary | None:
        """The vocabulary the data samples carry in their metainfo (``'vocabulary'``, or ``'text'`` as mmdet's
        grounding models and ``DetInferencer(texts=...)`` give it: ``'dog . frisbee'`` or a list of names; data
        samples or their metainfo dicts), or None (the model's). The samples of one batch must agree."""
        metas = [s if isinstance(s, dict) else getattr(s, 'metainfo', {}) for s in data_samples or []]
        given = [m['vocabulary'] if m.get('vocabulary') is not None else grounding_names(m['text'])
                 for m in metas if m.get('vocabulary') is not None or m.get('text') is not None]
        if not given:
            return None
        if len(given) != len(data_samples) or any(Vocabulary.coerce(v) != Vocabulary.coerce(given[0]) for v in given):
            raise ValueError('the data samples of one batch carry different vocabularies; predict them apart')
        return Vocabulary.coerce(given[0])


def check_input_stats(preprocessor: nn.Module | None, clip: CLIPModel, owner: str, *, tolerance: float = 0.5) -> None:
    """The data preprocessor must normalise images as the CLIP was trained (its ``image_stats``): stock mmseg /
    mmdet configs normalise with ImageNet's mean / std, which a CLIP reads as other colours, silently.

    Raises:
        ValueError: naming both statistics and the line to put in the config.
    """
    if preprocessor is None:
        return
    mean, std = clip.image_stats
    want_mean, want_std = [round(255 * m, 3) for m in mean], [round(255 * s, 3) for s in std]
    fix = f"data_preprocessor=dict(mean={want_mean}, std={want_std})"
    if getattr(preprocessor, '_enable_normalize', None) is False:  # mmseg's / mmdet's preprocessor without mean / std
        raise ValueError(f'{owner}: the data preprocessor does not normalise, but the CLIP reads images normalised '
                         f'with its own statistics; set {fix}')
    if not hasattr(preprocessor, 'mean'):  # mmengine's bare preprocessor: inputs come normalised by the caller
        return
    got_mean = [float(v) for v in preprocessor.mean.flatten()]
    got_std = [float(v) for v in preprocessor.std.flatten()]
    if len(got_mean) != 3 or any(abs(a - b) > tolerance for a, b in zip(got_mean + got_std, want_mean + want_std)):
        raise ValueError(f'{owner}: the data preprocessor normalises with mean {[round(v, 3) for v in got_mean]}, '
                         f'std {[round(v, 3) for v in got_std]}, but the CLIP was trained with mean {want_mean}, std '
                         f'{want_std} (0-255 scale); set {fix}')


def grounding_names(text: str | Sequence[str]) -> list[str]:
    """mmdet's grounding text (``'dog . frisbee .'``, split at ``'. '`` as its GLIP / Grounding DINO do) or a
    list of names -> the names."""
    if isinstance(text, str):
        text = text.strip().strip('.').split('. ')
    return [t.strip() for t in text if t.strip()]


def build_text_encoder(cfg: dict | None = None, **defaults: Any) -> OVTextEncoder:
    """Build a text encoder from a config dict (``type`` defaults to ``'OVTextEncoder'``); ``defaults``
    fill keys the config does not give."""
    from mmseg.registry import MODELS
    return MODELS.build(dict(dict(type='OVTextEncoder', **defaults), **(cfg or {})))
