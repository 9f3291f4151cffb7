"""A Hugging Face causal LM through transformers: a local folder of safetensors, or a GGUF file.

The model's own tokenizer and chat template are used. Base models (no template) read the
prompt as it is, with the tokenizer's BOS token in front when it defines one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from engram_sdk.errors import InputError, MissingDependencyError
from engram_sdk.llm.base import Backend, Chunk, Message, SamplingOptions, StopScanner, Usage
from engram_sdk.llm.template import PLAIN, ChatTemplate


class HFBackend(Backend):
    """Greedy or sampled decoding with ``model.generate`` streamed through a text streamer."""

    def __init__(
        self,
        model: str | Path,
        *,
        gguf_file: str | None = None,
        device: str = "cpu",
        dtype: str = "float32",
        name: str | None = None,
    ) -> None:
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:
            raise MissingDependencyError(
                "Hugging Face models need transformers: pip install 'engram-sdk[hf]'"
            ) from exc
        kw: dict[str, Any] = {"gguf_file": gguf_file} if gguf_file else {}
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(model), **kw)
            self.model = AutoModelForCausalLM.from_pretrained(
                str(model), dtype=getattr(torch, dtype), **kw
            )
        except (OSError, ValueError, ImportError) as exc:
            raise InputError(
                f"cannot load the Hugging Face model {model} ({gguf_file or 'safetensors'}): {exc}"
            ) from exc
        self.model.to(device).eval()
        self.device = device
        self.name = name or Path(gguf_file or str(model)).name
        own = self.tokenizer.chat_template
        self.is_chat = bool(own)
        self.template = ChatTemplate(
            own if isinstance(own, str) else PLAIN,
            bos=self.tokenizer.bos_token or "",
            eos=self.tokenizer.eos_token or "",
        )
        self._context = int(getattr(self.model.config, "max_position_embeddings", 0) or 2048)
        self._lock = threading.Lock()

    @property
    def context_length(self) -> int:
        """``max_position_embeddings`` of the model's config."""
        return self._context

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` (no special tokens added)."""
        return len(self.tokenizer(text, add_special_tokens=False).input_ids)

    def render(self, messages: Sequence[Message]) -> str:
        """The model's own chat template (``role: content`` paragraphs for base models)."""
        return self.template.render(messages)

    def encode_prompt(self, prompt: str) -> list[int]:
        """Prompt ids; a BOS token in front unless the text (a chat template) already has it."""
        ids = self.tokenizer(prompt, add_special_tokens=False).input_ids
        bos = self.tokenizer.bos_token_id
        if bos is not None and (not ids or ids[0] != bos) and not self.is_chat:
            ids = [bos, *ids]
        return ids

    def _stream_prompt(self, prompt: str, options: SamplingOptions) -> Iterator[Chunk]:
        ids = self.encode_prompt(prompt)
        budget = self.context_length - len(ids)
        if budget < 1:
            raise InputError(
                f"prompt of {len(ids)} tokens does not fit the {self.context_length}-token window"
            )
        return self._decode(ids, options, min(options.max_tokens, budget))

    def _decode(self, ids: list[int], options: SamplingOptions, max_tokens: int) -> Iterator[Chunk]:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        scanner = StopScanner(options.stop)

        class _StopWhenAsked(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
                return scanner.stopped

        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        tensor = torch.tensor([ids], device=self.device)
        sampling: dict[str, Any] = (
            {"do_sample": True, "temperature": options.temperature, "top_p": options.top_p}
            if options.temperature > 0
            else {"do_sample": False}
        )
        result: dict[str, Any] = {}

        def run() -> None:
            with torch.inference_mode():
                result["out"] = self.model.generate(
                    tensor,
                    attention_mask=torch.ones_like(tensor),
                    max_new_tokens=max_tokens,
                    streamer=streamer,
                    stopping_criteria=StoppingCriteriaList([_StopWhenAsked()]),
                    pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
                    **sampling,
                )

        with self._lock:
            worker = threading.Thread(target=run, daemon=True)
            worker.start()
            for piece in streamer:
                out = scanner.feed(piece)
                if out:
                    yield Chunk(text=out)
            worker.join()
        tail = scanner.flush()
        if tail:
            yield Chunk(text=tail)
        produced = int(result["out"].shape[1]) - len(ids) if "out" in result else 0
        finish = "stop" if scanner.stopped or produced < max_tokens else "length"
        usage = Usage(prompt_tokens=len(ids), completion_tokens=produced)
        yield Chunk(finish_reason=finish, usage=usage)  # type: ignore[arg-type]
