"""Decoding with the latent cache: chunked prefill, batched generation, sampling, stops.

``prefill`` feeds a prompt through the model in chunks (equal to one forward of the whole
prompt, with bounded activation memory); ``generate_batch`` prefills prompts of equal length together (no
padding anywhere), stacks their caches and decodes every sequence in one batch, each with its own length,
stop sequences and end; finished rows leave the batch. ``stream``/``generate`` are the
single-sequence forms.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from engram_sdk.model.batch_cache import select_rows, stack_caches
from engram_sdk.model.generate_graph import GraphedStep, graphable
from engram_sdk.model.transformer import ModelCache, Transformer

from engram_sdk.errors import InputError

PREFILL_CHUNK = 8192  # tokens per prefill step; longer prompts go through in chunks


def sample_rows(
    logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None
) -> list[int]:
    """One token id per row of ``logits`` (B, vocab): greedy at temperature 0, else top-p."""
    if temperature <= 0:
        return logits.argmax(-1).tolist()
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_p, idx = probs.sort(dim=-1, descending=True)
        keep = sorted_p.cumsum(-1) - sorted_p < top_p
        probs = torch.zeros_like(probs).scatter_(-1, idx, sorted_p * keep)
        probs = probs / probs.sum(-1, keepdim=True)
    return torch.multinomial(probs.cpu(), 1, generator=generator)[:, 0].tolist()


def sample_next(
    logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None
) -> int:
    """One token id from the last position's logits (vocab,)."""
    return sample_rows(logits[None], temperature, top_p, generator)[0]


def prefill(
    model: Any, ids: torch.Tensor, cache: ModelCache, *, chunk: int = PREFILL_CHUNK
) -> torch.Tensor:
    """Run ids (B, T) into ``cache`` ``chunk`` tokens at a time → last position's logits (B, V)."""
    if chunk < 1:
        raise InputError(f"chunk must be >= 1, got {chunk}")
    hidden_only = isinstance(model, Transformer)  # the head on the last position alone
    logits = None
    for t0 in range(0, ids.shape[1], chunk):
        if hidden_only:
            logits = model(ids[:, t0 : t0 + chunk], cache, return_hidden=True)[:, -1]
        else:
            logits = model(ids[:, t0 : t0 + chunk], cache)[:, -1]
    assert logits is not None
    return model.head(logits) if hidden_only else logits


def _check_options(top_p: float, max_new_tokens: int) -> None:
    if not 0 < top_p <= 1:
        raise InputError(f"top_p must be in (0, 1], got {top_p}")
    if max_new_tokens < 0:
        raise InputError(f"max_new_tokens must be >= 0, got {max_new_tokens}")


def _as_ids(prompt: Sequence[int] | torch.Tensor, what: str) -> torch.Tensor:
    ids = torch.as_tensor(prompt, dtype=torch.long).flatten()
    if ids.numel() == 0:
        raise InputError(f"{what} must not be empty")
    return ids


def _ends_with_stop(produced: list[int], stops: list[list[int]]) -> bool:
    return any(produced[-len(s) :] == s for s in stops)


@torch.no_grad()
def generate_batch(
    model: Any,
    prompts: Sequence[Sequence[int] | torch.Tensor],
    max_new_tokens: int,
    *,
    temperature: float = 0.0,
    top_p: float = 1.0,
    stop: Sequence[Sequence[int]] | None = None,
    seed: int | None = None,
    prefill_chunk: int = PREFILL_CHUNK,
    cuda_graph: bool = True,
    record: Callable[[ModelCache], GraphedStep | None] | None = None,
) -> list[list[int]]:
    """New ids for every prompt, decoded together; each row stops on its own.

    A row ends after ``max_new_tokens``, on a stop sequence (included in its output) or at
    ``max_seq_len``. Greedy results equal decoding each prompt alone. ``cuda_graph``: on
    CUDA, replay decode steps as one recorded graph where the model allows it
    (:mod:`engram_sdk.model.generate_graph`). ``record``: makes that graphed step for the
    prefilled cache instead (None: decode eagerly), for what is applied to the model from
    outside, e.g. Engram tables served by a table runtime
    (``engram_sdk.table_runtime.generate_batch``).
    """
    _check_options(top_p, max_new_tokens)
    seqs = [_as_ids(p, f"prompts[{i}]") for i, p in enumerate(prompts)]
    if not seqs:
        return []
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    stops = [list(s) for s in (stop or []) if len(s)]
    limit = model.config.max_seq_len
    was_training = model.training
    model.eval()
    try:
        order, caches, last = [], [], []
        for group in _same_length_groups(seqs):  # equal lengths prefill together, no padding
            cache = ModelCache()
            ids = torch.stack([seqs[i] for i in group]).to(device)
            last.append(prefill(model, ids, cache, chunk=prefill_chunk))
            caches.append(cache)
            order += group
        lengths = [len(seqs[i]) for i in order]
        cache = stack_caches(
            caches,
            capacity=min(limit, max(lengths) + max_new_tokens),
            engram_context=model.hasher.context,
            pad_id=model.hasher.config.pad_id,
        )
        del caches
        outputs = _decode(
            model,
            cache,
            torch.cat(last),
            lengths,
            max_new_tokens,
            (temperature, top_p, generator),
            stops,
            limit,
            cuda_graph,
            record,
        )
        by_prompt: list[list[int]] = [[] for _ in seqs]
        for row, prompt in enumerate(order):
            by_prompt[prompt] = outputs[row]
        return by_prompt
    finally:
        model.train(was_training)


def _same_length_groups(seqs: list[torch.Tensor]) -> list[list[int]]:
    """Indices of ``seqs`` grouped by length, in order of first appearance."""
    groups: dict[int, list[int]] = {}
    for i, ids in enumerate(seqs):
        groups.setdefault(len(ids), []).append(i)
    return list(groups.values())


def _decode(
    model: Any,
    cache: ModelCache,
    logits: torch.Tensor,
    lengths: list[int],
    max_new_tokens: int,
    sampling: tuple[float, float, torch.Generator | None],
    stops: list[list[int]],
    limit: int,
    use_graph: bool = True,
    record: Callable[[ModelCache], GraphedStep | None] | None = None,
) -> list[list[int]]:
    """The decode loop of :func:`generate_batch`; finished rows leave the batch.

    On CUDA, steps of a fixed batch replay one recorded CUDA graph (``GraphedStep``). The
    caches are made static either way (attention over the whole capacity, later positions
    masked), so eager steps reduce over the lengths a graph's do and pick the same tokens:
    over growing lengths bf16 rounding differs and tips near-ties of the logits.
    """
    outputs: list[list[int]] = [[] for _ in lengths]
    active = list(range(len(lengths)))  # output row of each batch row
    for lc in cache.layers:
        if lc.attn is not None:
            lc.attn.make_static()
    graphed = None
    if use_graph and record is not None:
        graphed = record(cache)
    elif use_graph and graphable(model, cache):
        graphed = GraphedStep(model, cache)
    for _ in range(max_new_tokens):
        tokens = sample_rows(logits, *sampling)
        keep = []
        for row, (seq, tok) in enumerate(zip(active, tokens, strict=True)):
            outputs[seq].append(tok)
            done = _ends_with_stop(outputs[seq], stops) or len(outputs[seq]) >= max_new_tokens
            if not done and lengths[seq] < limit:
                keep.append(row)
        if not keep:
            break
        if len(keep) < len(active):  # rows left: a graph of the old batch no longer fits
            graphed = _leave_graph(graphed)
            active = [active[r] for r in keep]
            tokens = [tokens[r] for r in keep]
            cache = select_rows(cache, keep, [lengths[s] for s in active])
        step = torch.tensor(tokens, dtype=torch.long)[:, None]
        if logits.is_cuda:
            step = step.to(logits.device)
        logits = None
        if graphed is not None:
            try:
                logits = graphed.step(step)
            except Exception as exc:  # a step that cannot be recorded runs eagerly
                warnings.warn(f"decoding without a CUDA graph: {exc!r}", stacklevel=2)
                graphed = _leave_graph(graphed)
        if logits is None:
            logits = model(step, cache)[:, -1]
        for seq in active:
            lengths[seq] += 1
    _leave_graph(graphed)
    return outputs


def _leave_graph(graphed: GraphedStep | None) -> None:
    if graphed is not None:
        graphed.finish()


@torch.no_grad()
def stream(
    model: Any,
    prompt_ids: Sequence[int] | torch.Tensor,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_p: float = 1.0,
    stop: Sequence[Sequence[int]] | None = None,
    seed: int | None = None,
    prefill_chunk: int = PREFILL_CHUNK,
) -> Iterator[int]:
    """Yield new ids until ``max_new_tokens`` or a stop sequence (which is yielded too)."""
    ids = _as_ids(prompt_ids, "prompt_ids")
    _check_options(top_p, max_new_tokens)
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    cache = ModelCache()
    was_training = model.training
    model.eval()
    try:
        logits = prefill(model, ids[None].to(device), cache, chunk=prefill_chunk)
        produced: list[int] = []
        stops = [list(s) for s in (stop or []) if len(s)]
        for _ in range(max_new_tokens):
            nxt = sample_rows(logits, temperature, top_p, generator)[0]
            produced.append(nxt)
            yield nxt
            if _ends_with_stop(produced, stops) or cache.length >= model.config.max_seq_len:
                return
            logits = model(torch.tensor([[nxt]], device=device), cache)[:, -1]
    finally:
        model.train(was_training)


def generate(
    model: Any,
    prompt_ids: Sequence[int] | torch.Tensor,
    max_new_tokens: int,
    stop: Sequence[Sequence[int]] | None = None,
    **kwargs: Any,
) -> list[int]:
    """New ids after the prompt; a stop sequence that ended generation is not included."""
    out = list(stream(model, prompt_ids, max_new_tokens, stop=stop, **kwargs))
    for s in stop or []:
        if s and out[-len(s) :] == list(s):
            return out[: -len(s)]
    return out
