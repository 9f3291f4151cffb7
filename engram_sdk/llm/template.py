"""Chat templates: the model's own Jinja template, rendered in a sandbox, or ChatML."""

from __future__ import annotations

from collections.abc import Sequence

from engram_sdk.errors import InputError
from engram_sdk.llm.base import Message

#: used by models that ship no template (base models, the built-in model)
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
PLAIN = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


class ChatTemplate:
    """A Jinja chat template (Hugging Face conventions: ``messages``, ``add_generation_prompt``)."""

    def __init__(self, source: str | None, *, bos: str = "", eos: str = "") -> None:
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        self.source = source or CHATML
        self.has_own = bool(source)
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        try:
            self.template = env.from_string(self.source)
        except Exception as exc:  # jinja2 syntax errors of a model's template
            raise InputError(f"the model's chat template does not parse: {exc}") from exc
        self.bos, self.eos = bos, eos

    def render(self, messages: Sequence[Message], *, add_generation_prompt: bool = True) -> str:
        """The prompt text for ``messages``."""
        return self.template.render(
            messages=[{"role": m["role"], "content": m["content"]} for m in messages],
            add_generation_prompt=add_generation_prompt,
            bos_token=self.bos,
            eos_token=self.eos,
        )
