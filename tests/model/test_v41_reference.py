"""DeepSeek-V4.1 against the reference: transformers' ``DeepseekV41ForCausalLM`` (main branch,
``models/deepseek_v41/``). A random reference model with Engram, two compressed-KV groups
(ratios 2 and 1), a re-indexing source and the two-level top-k loads into ours with logits
within 1e-5, the same greedy tokens, and exports back.

The reference is found as ``transformers.models.deepseek_v41`` when the installed
transformers has it, else in the folder named by ``ENGRAM_V41_REFERENCE`` (a checkout's
``src/transformers/models/deepseek_v41``), loaded in its place; without either the module
is skipped. On transformers 5.24 the cache dispatch is taught, as on main, to hand the text
config to V4.1's ``shared_compressed_attention`` cache layers.

The reference's forward *without* a cache appends the second group's compressed KV to the
first group's instead of replacing it (its cached path keeps them apart, as the
architecture does); logits are therefore compared against the cached forward, and the
uncached one only where there is a single group.
"""

import importlib
import os
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from engram_sdk.model.v4.v41_hf import export_hf_v41, load_hf_v41

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")
PACKAGE = "transformers.models.deepseek_v41"

CONFIG = dict(
    vocab_size=300, hidden_size=64, num_hidden_layers=6, num_attention_heads=4, head_dim=32,
    q_lora_rank=32, qk_rope_head_dim=8, sliding_window=8, o_groups=2, o_lora_rank=16,
    moe_intermediate_size=32, n_routed_experts=8, num_experts_per_tok=2, index_n_heads=4,
    index_head_dim=32, index_topk=3, candidate_topk_blocks=2, candidate_block_size=2,
    compress_ratios=[0, 0, 2, 2, 1, 1], kv_source_layer_ids=[2, 4],
    index_source_layer_ids=[2, 4, 5], candidate_source_layer_id=4, hc_mult=3,
    max_position_embeddings=256, swiglu_limit=0.6, num_nextn_predict_layers=0,
    dspark_noise_token_id=5, engram_layer_ids=[1, 4], engram_vocab_size=101,
    engram_max_ngram_size=3, engram_n_heads=2, engram_head_dim=64, engram_pad_id=2,
    rope_scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64,
                  "beta_fast": 32, "beta_slow": 1},
)  # fmt: skip


def _import_reference() -> tuple[types.ModuleType, types.ModuleType]:
    try:
        importlib.import_module(PACKAGE)
    except ImportError:
        folder = os.environ.get("ENGRAM_V41_REFERENCE")
        if not folder or not (Path(folder) / "modeling_deepseek_v41.py").is_file():
            pytest.skip("no DeepseekV41 reference (transformers main or ENGRAM_V41_REFERENCE)")
        package = types.ModuleType(PACKAGE)
        package.__path__ = [folder]
        sys.modules[PACKAGE] = package
    return (
        importlib.import_module(f"{PACKAGE}.modeling_deepseek_v41"),
        importlib.import_module(f"{PACKAGE}.configuration_deepseek_v41"),
    )


def _teach_cache_dispatch(monkeypatch: pytest.MonkeyPatch, text_config: object) -> None:
    import transformers.cache_utils as cache_utils

    try:
        cache_utils.DynamicCache(config=text_config)
        return
    except TypeError:  # 5.24: no config for the shared_compressed_attention layer
        pass
    original = cache_utils.get_layer_types_and_kwargs

    def with_config(config: object) -> tuple[list[str], list[dict]]:
        layer_types, kwargs = original(config)
        return layer_types, [
            {"config": config} if kind == "shared_compressed_attention" else kw
            for kind, kw in zip(layer_types, kwargs, strict=True)
        ]

    monkeypatch.setattr(cache_utils, "get_layer_types_and_kwargs", with_config)


def _tokenizer() -> object:
    """300 word-level tokens; case and leading-space variants collapse in V4.1's map."""
    words = ["<s>", "</s>", "<pad>"] + [
        v for i in range(99) for v in (f"w{i}x", f"W{i}X", f" w{i}x")
    ]  # fmt: skip
    model = tokenizers.models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<pad>")
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tokenizers.Tokenizer(model))


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    modeling, configuration = _import_reference()
    tok = _tokenizer()
    lookup, compressed = modeling.build_compressed_token_map(tok)
    fields = dict(CONFIG, engram_compressed_vocab_size=compressed)
    layout = modeling.EngramLayout.from_config(
        configuration.DeepseekV41TextConfig(**fields, engram_num_embeddings=[0, 0])
    )
    rows = [sum(sum(order) for order in layer) for layer in layout.primes]
    config = configuration.DeepseekV41TextConfig(**fields, engram_num_embeddings=rows)
    with pytest.MonkeyPatch.context() as monkeypatch:
        _teach_cache_dispatch(monkeypatch, config)
        torch.manual_seed(0)
        model = modeling.DeepseekV41ForCausalLM(config).eval()
        with torch.no_grad():
            for name, p in model.named_parameters():  # every weight random, norms near 1
                p.normal_(0, 0.08 if p.dim() > 1 else 0.2)
                if name.endswith("norm.weight"):
                    p.add_(1.0)
        model.model.bind_tokenizer(tok)
        folder = tmp_path_factory.mktemp("v41") / "hf"
        model.save_pretrained(folder)
        yield {"model": model, "modeling": modeling, "tokenizer": tok, "folder": folder,
               "token_map": torch.tensor(lookup)}  # fmt: skip


def _ours(reference: dict) -> torch.nn.Module:
    ours = load_hf_v41(reference["folder"]).eval()
    ours.set_token_map(reference["token_map"])
    return ours


def _ref_logits(reference: dict, ids: torch.Tensor, use_cache: bool = True) -> torch.Tensor:
    reference["model"].model.engram_hash_state.history = None  # a new sequence
    return reference["model"](ids, use_cache=use_cache).logits


IDS = torch.randint(0, 300, (2, 40), generator=torch.Generator().manual_seed(1))


def test_random_reference_v41_loads_with_equal_logits(reference: dict) -> None:
    ours = _ours(reference)
    assert ours.config.compress_ratios == [0, 0, 2, 2, 1, 1] and ours.config.rope_factor == 4.0
    with torch.no_grad():
        for length in (40, 1, 3):  # 1 and 3: before / around the first complete group
            ids = IDS[:, :length]
            torch.testing.assert_close(ours(ids), _ref_logits(reference, ids), atol=1e-5,
                                       rtol=1e-5)  # fmt: skip


def _reference_greedy(reference: dict, prompt: torch.Tensor, steps: int) -> list[int]:
    """The reference's own cached decoding: prefill, then one token a step. (On
    transformers 5.24, ``generate()`` hands this main-branch model a per-layer-type mask
    dict whose first entry is not the sliding window, so its tokens differ even with
    sliding-window layers only; the explicit loop avoids that.)"""
    from transformers.cache_utils import DynamicCache

    model = reference["model"]
    model.model.engram_hash_state.history = None
    cache, ids, out = DynamicCache(config=model.config), prompt, []
    for _ in range(steps):
        logits = model(ids, past_key_values=cache, use_cache=True).logits
        ids = logits[:, -1].argmax(-1, keepdim=True)
        out.append(int(ids))
    return out


def test_greedy_tokens_equal_the_reference_cached_decoding(reference: dict) -> None:
    ours, prompt = _ours(reference), IDS[:1, :13]
    with torch.no_grad():
        want = _reference_greedy(reference, prompt, 32)
        assert ours.generate(prompt[0].tolist(), 32) == want  # our cache
        ids = prompt  # and recomputing the whole sequence at every step
        for _ in range(32):
            ids = torch.cat([ids, ours(ids)[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert ids[0, 13:].tolist() == want


def test_export_reloads_in_the_reference_with_equal_logits(reference: dict, tmp_path: Path) -> None:
    ours = _ours(reference)
    export_hf_v41(ours, tmp_path / "back", max_shard_bytes=400_000)
    assert (tmp_path / "back" / "model.safetensors.index.json").exists()
    again = reference["modeling"].DeepseekV41ForCausalLM.from_pretrained(tmp_path / "back").eval()
    again.model.bind_tokenizer(reference["tokenizer"])
    with torch.no_grad():
        torch.testing.assert_close(
            again(IDS, use_cache=True).logits, ours(IDS), atol=1e-5, rtol=1e-5
        )


def test_uncached_reference_mixes_groups_and_agrees_where_there_is_one(reference: dict) -> None:
    ours = _ours(reference)
    with torch.no_grad():
        cached, uncached = _ref_logits(reference, IDS), _ref_logits(reference, IDS, False)
        assert (cached - uncached).abs().max() > 1e-3  # two groups: the uncached path differs
        # layers 0-3 hold one group only: the uncached reference agrees with ours there
        one_group = dict(CONFIG, num_hidden_layers=4, compress_ratios=[0, 0, 2, 2],
                         kv_source_layer_ids=[2], index_source_layer_ids=[2],
                         candidate_source_layer_id=2, engram_layer_ids=[])  # fmt: skip
    config = type(reference["model"].config)(**one_group)
    torch.manual_seed(3)
    small = reference["modeling"].DeepseekV41ForCausalLM(config).eval()
    with torch.no_grad():
        for p in small.parameters():
            p.normal_(0, 0.08)
    small.save_pretrained(reference["folder"].parent / "small")
    ours = load_hf_v41(reference["folder"].parent / "small").eval()
    with torch.no_grad():
        torch.testing.assert_close(ours(IDS), small(IDS, use_cache=False).logits, atol=1e-5,
                                   rtol=1e-5)  # fmt: skip


def test_v41_flash_preset_total_equals_the_reference_on_the_meta_device(reference: dict) -> None:
    from engram_sdk.model.v4.info import count_v41_parameters
    from engram_sdk.model.v4.presets import get_v41_preset

    config_cls = type(reference["model"].config)
    with torch.device("meta"):
        full = reference["modeling"].DeepseekV41ForCausalLM(
            config_cls(engram_layer_ids=[1, 14], engram_num_embeddings=[384006168, 384016682])
        )
    total = sum(p.numel() for p in full.parameters())
    assert count_v41_parameters(get_v41_preset("deepseek-v4.1-flash")).total == total
