"""Opening GGUF models without llama.cpp's AMX repacking where the CPU reports AMX."""

from __future__ import annotations

from pathlib import Path

import pytest

from engram_sdk.llm.llamacpp import default_model_path
from engram_sdk.llm.llamacpp_cpu import cpu_has_amx, open_llama

SAPPHIRE = "flags\t\t: fpu vme sse2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8 arch_lbr\n"
ZEN = "flags\t\t: fpu vme sse2 avx2 avx512f avx512_bf16 vaes\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"processor\t: 0\n{SAPPHIRE}bugs\t\t: spectre_v1\n", True),
        (f"processor\t: 0\n{ZEN}", False),
        ("processor\t: 0\nvmx flags\t: amx_tile\n", False),  # not the CPU's own flags line
        ("", False),
    ],
)
def test_amx_is_read_from_the_cpu_flags_line(tmp_path: Path, text: str, expected: bool) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(text)
    assert cpu_has_amx(cpuinfo) is expected


def test_no_cpuinfo_means_no_amx(tmp_path: Path) -> None:
    assert cpu_has_amx(tmp_path / "missing") is False


def test_extra_buffers_off_reaches_the_model_and_leaves_the_library_as_it_was() -> None:
    llama_module = pytest.importorskip("llama_cpp.llama")
    default = llama_module.llama_cpp.llama_model_default_params
    path = str(default_model_path())
    plain = open_llama(path, use_extra_buffers=False, n_ctx=256, n_threads=1, verbose=False)
    assert plain.model_params.use_extra_bufts is False
    assert llama_module.llama_cpp.llama_model_default_params is default
    assert default().use_extra_bufts is True  # llama.cpp's own default, untouched
    ids = plain.tokenize(b"The capital of France is", add_bos=True)
    text = plain.create_completion(ids, max_tokens=4, temperature=0)["choices"][0]["text"]
    assert "Paris" in text
    plain.close()
