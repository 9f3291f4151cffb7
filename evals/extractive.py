"""Extractive reading: a local reader whose reply may only copy spans of the sample's context.

:class:`ExtractiveAdapter` wraps a :class:`~engram_sdk.evals.adapters.LlamaCppAdapter` or
:class:`~engram_sdk.evals.adapters.HFAdapter` and decodes greedily under
:class:`~engram_sdk.evals.span_automaton.SpanAutomaton`: every value the model writes is a
verbatim run of the context (through the memory pipeline: the recalled context), so a small
reader cannot mis-copy a UUID or a number; which run it copies is still its choice. Scores
measured this way are reported under the adapter's own name (``extractive+<reader>``), never
mixed with free decoding.
"""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from engram_sdk.evals.adapters import BackendAdapter
from engram_sdk.evals.focus import query_terms
from engram_sdk.evals.protocol import Answer, BaseAdapter, EvalError
from engram_sdk.evals.sample import Sample
from engram_sdk.evals.span_automaton import SpanAutomaton, Vocabulary

from engram_sdk.errors import InputError

if TYPE_CHECKING:
    from engram_sdk.llm.hf import HFBackend
    from engram_sdk.llm.llamacpp import LlamaCppBackend


class ConstrainedDecoder(Protocol):
    """A local backend that can decode greedily under a token mask."""

    vocab: Vocabulary

    def generate(self, prompt: str, automaton: SpanAutomaton, max_tokens: int) -> str:
        """Greedy continuation of ``prompt``, each token drawn from ``automaton.allowed()``."""
        ...


class LlamaCppDecoder:
    """llama.cpp: the mask is a ``logits_processor`` of ``create_completion``."""

    def __init__(self, backend: LlamaCppBackend) -> None:
        self.llama = backend.llama
        n = self.llama.n_vocab()
        pieces = [self.llama.detokenize([i], special=False) for i in range(n)]
        self.vocab = Vocabulary(pieces, [self.llama.token_eos()])
        self._lock = threading.Lock()

    def generate(self, prompt: str, automaton: SpanAutomaton, max_tokens: int) -> str:
        from llama_cpp import LogitsProcessorList

        ids = self.llama.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
        n_prompt = len(ids)

        def constrain(input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
            _catch_up(automaton, input_ids[n_prompt:])
            return automaton.mask(scores)

        budget = min(max_tokens, self.llama.n_ctx() - n_prompt)
        if budget < 1:
            raise InputError(f"prompt of {n_prompt} tokens does not fit the model's window")
        with self._lock:
            self.llama.reset()
            out: Any = self.llama.create_completion(
                ids,
                max_tokens=budget,
                temperature=0.0,
                logits_processor=LogitsProcessorList([constrain]),
            )
        return str(out["choices"][0]["text"])


class HFDecoder:
    """transformers: the mask is a ``LogitsProcessor`` of ``model.generate``."""

    def __init__(self, backend: HFBackend) -> None:
        self.backend = backend
        tok = backend.tokenizer
        special = frozenset(tok.all_special_ids) | frozenset(tok.added_tokens_decoder)
        pieces = [b"" if i in special else _hf_piece(tok, i) for i in range(len(tok))]
        ends = [t for t in (tok.eos_token_id,) if t is not None]
        self.vocab = Vocabulary(pieces, ends)

    def generate(self, prompt: str, automaton: SpanAutomaton, max_tokens: int) -> str:
        import torch
        from transformers import LogitsProcessor, LogitsProcessorList

        ids = self.backend.encode_prompt(prompt)
        n_prompt = len(ids)

        class _Constrain(LogitsProcessor):
            def __call__(self, input_ids: Any, scores: Any) -> Any:
                _catch_up(automaton, input_ids[0, n_prompt:].tolist())
                keep = torch.as_tensor(automaton.allowed(), device=scores.device)
                keep = keep[keep < scores.shape[-1]]
                out = torch.full_like(scores, float("-inf"))
                out[:, keep] = scores[:, keep]
                return out

        tok = self.backend.tokenizer
        tensor = torch.tensor([ids], device=self.backend.device)
        with torch.inference_mode():
            out = self.backend.model.generate(
                tensor,
                attention_mask=torch.ones_like(tensor),
                max_new_tokens=max_tokens,
                do_sample=False,
                logits_processor=LogitsProcessorList([_Constrain()]),
                pad_token_id=tok.pad_token_id or tok.eos_token_id,
            )
        return str(tok.decode(out[0, n_prompt:], skip_special_tokens=True))


def _catch_up(automaton: SpanAutomaton, generated: Any) -> None:
    generated = [int(t) for t in generated]
    if len(generated) < automaton.steps:
        raise EvalError("extractive decoding: the model's tokens went back (restarted reply)")
    for token in generated[automaton.steps :]:
        automaton.step(token)


def _byte_level_table() -> dict[str, int]:
    """GPT-2's byte-level alphabet: the printable character standing for each byte."""
    keep = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    chars, extra = list(keep), 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(keep, chars, strict=True)}


_BYTE_LEVEL = _byte_level_table()
_BYTE_FALLBACK = re.compile(r"<0x([0-9A-Fa-f]{2})>")


def _hf_piece(tokenizer: Any, token_id: int) -> bytes:
    """A token's bytes: byte-level BPE tokens through GPT-2's alphabet, SentencePiece's
    byte-fallback tokens as their byte and its word-start marker as a space."""
    raw = tokenizer.convert_ids_to_tokens(token_id)
    if isinstance(raw, str) and raw and all(c in _BYTE_LEVEL for c in raw):
        return bytes(_BYTE_LEVEL[c] for c in raw)  # (SentencePiece's "▁" is not in it)
    if isinstance(raw, str) and (m := _BYTE_FALLBACK.fullmatch(raw)):
        return bytes([int(m.group(1), 16)])
    text = tokenizer.decode([token_id], clean_up_tokenization_spaces=False)
    if isinstance(raw, str) and raw.startswith("\u2581") and not text.startswith(" "):
        text = " " + text
    return text.encode("utf-8", "replace")


def decoder_for(reader: BackendAdapter) -> ConstrainedDecoder:
    """The constrained decoder of ``reader``'s backend (llama.cpp or transformers)."""
    from engram_sdk.llm.hf import HFBackend
    from engram_sdk.llm.llamacpp import LlamaCppBackend

    backend = reader.backend
    if isinstance(backend, LlamaCppBackend):
        return LlamaCppDecoder(backend)
    if isinstance(backend, HFBackend):
        return HFDecoder(backend)
    raise InputError(
        f"extractive reading needs a local model (a GGUF file or a Hugging Face model); "
        f"{reader.name!r} is a {type(backend).__name__}"
    )


class ExtractiveAdapter(BaseAdapter):
    """``reader`` answering with spans of the sample's context only (see the module doc)."""

    def __init__(self, reader: BackendAdapter, *, no_repeat: bool = True) -> None:
        self.reader, self.no_repeat = reader, no_repeat
        self.decoder = decoder_for(reader)
        self.name = f"extractive+{reader.name}"
        self.max_context = reader.max_context
        self.token_counter = reader.token_counter
        self.template_tokens = reader.template_tokens

    def answer(self, sample: Sample) -> Answer:
        automaton = SpanAutomaton(
            sample.context,
            self.decoder.vocab,
            banned=query_terms(sample.query),
            no_repeat=self.no_repeat,
        )
        prompt = self.reader.render(sample)
        text = self.decoder.generate(prompt, automaton, sample.max_new_tokens)
        return Answer(text, {"extractive": True})
