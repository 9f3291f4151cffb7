"""Hugging Face DeepseekV4 checkpoints ⇄ our V4 model: the one place for V4's name mapping.

Our names follow DeepSeek's own checkpoints (``layers.{i}.attn.wq_a.weight``) except that
routed experts are stacked (``ffn.expert_w1`` (E, I, D)). Loading takes DeepSeek's layout
(per-expert ``ffn.experts.{e}.w1.weight``; FP8 / FP4 tensors are dequantised to float32 on
load, :mod:`engram_sdk.model.quant`), the same with transformers' ``model.`` prefixes
(what ``save_pretrained`` writes) or transformers' module names (fused
``mlp.experts.gate_up_proj``). Export writes DeepSeek's layout in float32, which
transformers and DeepSeek's inference code both read.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from engram_sdk.model.hf import _read_hf_weights, write_sharded
from engram_sdk.model.quant import dequantize_state
from engram_sdk.model.v4.config import V4Config
from engram_sdk.model.v4.model import V4Transformer, build_v4

from engram_sdk.errors import InputError

# ours ← transformers, per layer ({i} stands for the layer); experts are handled apart
LAYER_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "hc_attn.fn": "attn_hc.fn",
    "hc_attn.base": "attn_hc.base",
    "hc_attn.scale": "attn_hc.scale",
    "hc_ffn.fn": "ffn_hc.fn",
    "hc_ffn.base": "ffn_hc.base",
    "hc_ffn.scale": "ffn_hc.scale",
    "attn.wq_a.weight": "self_attn.q_a_proj.weight",
    "attn.q_norm.weight": "self_attn.q_a_norm.weight",
    "attn.wq_b.weight": "self_attn.q_b_proj.weight",
    "attn.wkv.weight": "self_attn.kv_proj.weight",
    "attn.kv_norm.weight": "self_attn.kv_norm.weight",
    "attn.wo_a.weight": "self_attn.o_a_proj.weight",
    "attn.wo_b.weight": "self_attn.o_b_proj.weight",
    "attn.attn_sink": "self_attn.sinks",
    "attn.compressor.wkv.weight": "self_attn.compressor.kv_proj.weight",
    "attn.compressor.wgate.weight": "self_attn.compressor.gate_proj.weight",
    "attn.compressor.ape": "self_attn.compressor.position_bias",
    "attn.compressor.norm.weight": "self_attn.compressor.kv_norm.weight",
    "attn.indexer.compressor.wkv.weight": "self_attn.compressor.indexer.kv_proj.weight",
    "attn.indexer.compressor.wgate.weight": "self_attn.compressor.indexer.gate_proj.weight",
    "attn.indexer.compressor.ape": "self_attn.compressor.indexer.position_bias",
    "attn.indexer.compressor.norm.weight": "self_attn.compressor.indexer.kv_norm.weight",
    "attn.indexer.wq_b.weight": "self_attn.compressor.indexer.q_b_proj.weight",
    "attn.indexer.weights_proj.weight": "self_attn.compressor.indexer.scorer.weights_proj.weight",
    "ffn.gate.weight": "mlp.gate.weight",
    "ffn.gate.bias": "mlp.gate.e_score_correction_bias",
    "ffn.gate.tid2eid": "mlp.gate.tid2eid",
    "ffn.expert_w2": "mlp.experts.down_proj",
    "ffn.shared.w1.weight": "mlp.shared_experts.gate_proj.weight",
    "ffn.shared.w2.weight": "mlp.shared_experts.down_proj.weight",
    "ffn.shared.w3.weight": "mlp.shared_experts.up_proj.weight",
    "engram.table.embedding.weight": "engram.embed.weight",  # V4.1 (transformers main)
    "engram.wkv.weight": "engram.wkv.weight",
    "engram.q_weight": "engram.q_weight",
    "engram.k_weight": "engram.k_weight",
}
TOP_NAMES = {
    "embed.weight": "model.embed_tokens.weight",
    "norm.weight": "model.norm.weight",
    "head.weight": "lm_head.weight",
    "hc_head.fn": "model.hc_head.hc_fn",
    "hc_head.base": "model.hc_head.hc_base",
    "hc_head.scale": "model.hc_head.hc_scale",
}
# DeepSeek's own layout (the released checkpoints, and what transformers saves, with a
# ``model.`` prefix on most names): ours → native, only where the two differ
NATIVE_LAYER = {
    "attn.kv_norm.weight": "attn.norm.weight",
    "hc_attn.fn": "hc_attn_fn", "hc_attn.base": "hc_attn_base", "hc_attn.scale": "hc_attn_scale",
    "hc_ffn.fn": "hc_ffn_fn", "hc_ffn.base": "hc_ffn_base", "hc_ffn.scale": "hc_ffn_scale",
    "ffn.shared.w1.weight": "ffn.shared_experts.w1.weight",
    "ffn.shared.w2.weight": "ffn.shared_experts.w2.weight",
    "ffn.shared.w3.weight": "ffn.shared_experts.w3.weight",
    "engram.table.embedding.weight": "engram.embed.weight",  # V4.1
}  # fmt: skip
NATIVE_TOP = {"hc_head.fn": "hc_head_fn", "hc_head.base": "hc_head_base",
              "hc_head.scale": "hc_head_scale"}  # fmt: skip
_EXPERT_STACKS = ("ffn.expert_w1", "ffn.expert_w2", "ffn.expert_w3")
_HF_LAYER = re.compile(r"(?:model\.)?layers\.(\d+)\.(.+)")
_NATIVE_EXPERT = re.compile(r"ffn\.experts\.(\d+)\.(w[123])\.weight")
_TOP_ALIASES = {
    "model.embed_tokens.weight": "embed.weight", "embed.weight": "embed.weight",
    "lm_head.weight": "head.weight", "head.weight": "head.weight",
    "model.norm.weight": "norm.weight", "norm.weight": "norm.weight",
    **{f"model.{v}": k for k, v in TOP_NAMES.items() if k.startswith("hc_head")},
    **{f"model.hc_head.hc_{k[len('hc_head.'):]}": k for k in NATIVE_TOP},
    **{v: k for k, v in NATIVE_TOP.items()},
}  # fmt: skip


def hf_to_ours(
    state: dict[str, torch.Tensor], cfg: V4Config | None = None
) -> dict[str, torch.Tensor]:
    """Our state dict from any DeepseekV4 layout: transformers' modules (fused experts),
    transformers' saved files or DeepSeek's own (per-expert tensors, already dequantised)."""
    from_module = {v: k for k, v in LAYER_NAMES.items()}
    from_native = {v: k for k, v in NATIVE_LAYER.items()}
    out: dict[str, torch.Tensor] = {}
    experts: dict[tuple[str, str], dict[int, torch.Tensor]] = {}
    for name, t in state.items():
        if name.startswith(("mtp.", "model.mtp.")):
            continue  # multi-token prediction layers are not built
        if name in _TOP_ALIASES:
            out[_TOP_ALIASES[name]] = t
            continue
        m = _HF_LAYER.fullmatch(name)
        if m is None:
            raise InputError(f"unknown DeepseekV4 parameter {name!r}")
        i, rest = m.groups()
        expert = _NATIVE_EXPERT.fullmatch(rest)
        if expert is not None:
            experts.setdefault((i, expert.group(2)), {})[int(expert.group(1))] = t
        elif rest == "mlp.experts.gate_up_proj":
            w1, w3 = t.chunk(2, dim=1)
            out[f"layers.{i}.ffn.expert_w1"] = w1.contiguous()
            out[f"layers.{i}.ffn.expert_w3"] = w3.contiguous()
        else:
            out[f"layers.{i}.{from_module.get(rest, from_native.get(rest, rest))}"] = t
    for (i, w), per in experts.items():
        if cfg is not None and sorted(per) != list(range(cfg.n_routed_experts)):
            raise InputError(f"layer {i}: expected experts 0..{cfg.n_routed_experts - 1}")
        out[f"layers.{i}.ffn.expert_{w}"] = torch.stack([per[e] for e in sorted(per)])
    return out


def ours_to_hf(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers' module state dict (``DeepseekV4ForCausalLM.state_dict()``) from ours."""
    out: dict[str, torch.Tensor] = {}
    for name, t in state.items():
        if name in TOP_NAMES:
            out[TOP_NAMES[name]] = t
            continue
        i, rest = _split_layer(name)
        if rest == "ffn.expert_w1":
            w3 = state[f"layers.{i}.ffn.expert_w3"]
            out[f"model.layers.{i}.mlp.experts.gate_up_proj"] = torch.cat([t, w3], dim=1)
        elif rest != "ffn.expert_w3":
            out[f"model.layers.{i}.{LAYER_NAMES[rest]}"] = t
    return out


def ours_to_native(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """DeepSeek's own checkpoint layout (per-expert tensors) from ours."""
    out: dict[str, torch.Tensor] = {}
    for name, t in state.items():
        if not name.startswith("layers."):
            out[NATIVE_TOP.get(name, name)] = t
            continue
        i, rest = _split_layer(name)
        if rest in _EXPERT_STACKS:
            w = rest[-2:]
            for e in range(t.shape[0]):
                out[f"layers.{i}.ffn.experts.{e}.{w}.weight"] = t[e].contiguous()
        else:
            out[f"layers.{i}.{NATIVE_LAYER.get(rest, rest)}"] = t
    return out


def _split_layer(name: str) -> tuple[str, str]:
    m = re.fullmatch(r"layers\.(\d+)\.(.+)", name)
    if m is None or (m.group(2) not in LAYER_NAMES and m.group(2) not in _EXPERT_STACKS):
        raise InputError(f"{name!r} has no DeepseekV4 equivalent")
    return m.group(1), m.group(2)


def _rope_fields(hf: dict[str, Any]) -> dict[str, Any]:
    rope = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
    compress = rope.get("compress", rope) if isinstance(rope.get("compress", rope), dict) else {}
    fields: dict[str, Any] = {
        "rope_theta": (rope.get("main") or {}).get("rope_theta", hf.get("rope_theta", 10000.0)),
        "compress_rope_theta": compress.get("rope_theta", hf.get("compress_rope_theta", 160000.0)),
    }
    if compress.get("rope_type", compress.get("type")) == "yarn":
        fields.update(
            rope_factor=compress["factor"],
            original_seq_len=compress.get("original_max_position_embeddings", 4096),
            beta_fast=compress.get("beta_fast") or 32,
            beta_slow=compress.get("beta_slow") or 1,
        )
    return fields


def config_from_hf(hf: dict[str, Any]) -> V4Config:
    """Our config for a DeepseekV4 ``config.json`` (current or legacy field names)."""
    try:
        return _config_from_hf(hf)
    except KeyError as missing:
        raise InputError(f"DeepseekV4 config.json lacks the field {missing}") from None


def _config_from_hf(hf: dict[str, Any]) -> V4Config:
    n = hf["num_hidden_layers"]
    rates = hf.get("compress_rates") or {}
    csa = rates.get("compressed_sparse_attention", hf.get("compress_rate_csa", 4))
    hca = rates.get("heavily_compressed_attention", hf.get("compress_rate_hca", 128))
    by_ratio = {0: "sliding_attention", csa: "compressed_sparse_attention",
                hca: "heavily_compressed_attention"}  # fmt: skip
    types = hf.get("layer_types") or [by_ratio[r] for r in hf["compress_ratios"]]
    n_hash = hf.get("num_hash_layers", 3)
    head_dim = hf.get("head_dim", 512)
    rope_dim = hf.get("qk_rope_head_dim") or int(head_dim * hf.get("partial_rotary_factor", 0.125))
    return V4Config(
        vocab_size=hf["vocab_size"], dim=hf["hidden_size"], n_layers=n,
        norm_eps=hf.get("rms_norm_eps", 1e-6), max_seq_len=hf.get("max_position_embeddings", 4096),
        n_heads=hf["num_attention_heads"], head_dim=head_dim, rope_head_dim=rope_dim,
        q_lora_rank=hf["q_lora_rank"], o_groups=hf["o_groups"], o_lora_rank=hf["o_lora_rank"],
        window_size=hf["sliding_window"], attn_types=list(types[:n]),
        compress_ratio_csa=csa, compress_ratio_hca=hca,
        index_n_heads=hf["index_n_heads"], index_head_dim=hf["index_head_dim"],
        index_topk=hf["index_topk"], **_rope_fields(hf),
        hc_mult=hf["hc_mult"], hc_sinkhorn_iters=hf["hc_sinkhorn_iters"], hc_eps=hf["hc_eps"],
        mlp_types=list(hf.get("mlp_layer_types") or (["hash_moe"] * n_hash + ["moe"] * n)[:n]),
        n_routed_experts=hf["n_routed_experts"], n_shared_experts=hf.get("n_shared_experts", 1),
        n_activated_experts=hf["num_experts_per_tok"], moe_inter_dim=hf["moe_intermediate_size"],
        score_func=hf.get("scoring_func", "sqrtsoftplus"),
        route_scale=hf.get("routed_scaling_factor", 1.0), swiglu_limit=hf.get("swiglu_limit", 10.0),
        n_mtp_layers=hf.get("num_nextn_predict_layers", 0),
        **{k: hf[k] for k in ENGRAM_FIELDS if hf.get(k) is not None},
    )  # fmt: skip


ENGRAM_FIELDS = (
    "engram_layer_ids",
    "engram_vocab_size",
    "engram_num_embeddings",
    "engram_max_ngram_size",
    "engram_n_heads",
    "engram_head_dim",
    "engram_pad_id",
    "engram_compressed_vocab_size",
)  # fmt: skip  (V4.1's names, read when present)


def config_to_hf(cfg: V4Config) -> dict[str, Any]:
    """transformers' DeepseekV4 ``config.json`` for our config (V4.1's Engram fields added
    when Engram is on)."""
    partial = cfg.rope_head_dim / cfg.head_dim
    compress: dict[str, Any] = {"rope_type": "default", "rope_theta": cfg.compress_rope_theta}
    if cfg.rope_factor > 1:
        compress = {**compress, "rope_type": "yarn", "factor": cfg.rope_factor,
                    "original_max_position_embeddings": cfg.original_seq_len,
                    "beta_fast": cfg.beta_fast, "beta_slow": cfg.beta_slow,
                    "attention_factor": 1.0}  # fmt: skip
    return {
        "architectures": ["DeepseekV4ForCausalLM"], "model_type": "deepseek_v4",
        "vocab_size": cfg.vocab_size, "hidden_size": cfg.dim, "num_hidden_layers": cfg.n_layers,
        "rms_norm_eps": cfg.norm_eps, "max_position_embeddings": cfg.max_seq_len,
        "num_attention_heads": cfg.n_heads, "num_key_value_heads": 1, "head_dim": cfg.head_dim,
        "partial_rotary_factor": partial, "q_lora_rank": cfg.q_lora_rank,
        "o_groups": cfg.o_groups, "o_lora_rank": cfg.o_lora_rank,
        "sliding_window": cfg.window_size, "layer_types": cfg.attn_types,
        "compress_rates": {"compressed_sparse_attention": cfg.compress_ratio_csa,
                           "heavily_compressed_attention": cfg.compress_ratio_hca},
        "index_n_heads": cfg.index_n_heads, "index_head_dim": cfg.index_head_dim,
        "index_topk": cfg.index_topk, "rope_theta": cfg.rope_theta,
        "compress_rope_theta": cfg.compress_rope_theta,
        "rope_parameters": {
            "main": {"rope_type": "default", "rope_theta": cfg.rope_theta,
                     "partial_rotary_factor": partial},
            "compress": {**compress, "partial_rotary_factor": partial},
        },
        "hc_mult": cfg.hc_mult, "hc_sinkhorn_iters": cfg.hc_sinkhorn_iters, "hc_eps": cfg.hc_eps,
        "mlp_layer_types": cfg.mlp_types, "n_routed_experts": cfg.n_routed_experts,
        "n_shared_experts": cfg.n_shared_experts, "num_experts_per_tok": cfg.n_activated_experts,
        "moe_intermediate_size": cfg.moe_inter_dim, "scoring_func": cfg.score_func,
        "norm_topk_prob": True, "routed_scaling_factor": cfg.route_scale,
        "swiglu_limit": cfg.swiglu_limit, "num_nextn_predict_layers": cfg.n_mtp_layers,
        "tie_word_embeddings": False, "hidden_act": "silu",
    } | ({k: getattr(cfg, k) for k in ENGRAM_FIELDS} if cfg.engram_layer_ids else {})  # fmt: skip


def load_hf_v4(folder: str | Path, device: str = "cpu") -> V4Transformer:
    """Our V4 model from a DeepseekV4 folder (config.json + safetensors, either layout)."""
    from engram_sdk.model.checkpoint import check_state

    folder = Path(folder)
    hf_cfg = json.loads((folder / "config.json").read_text())
    cfg = config_from_hf(hf_cfg)
    state = hf_to_ours(dequantize_state(_read_hf_weights(folder)), cfg)
    model = build_v4(cfg, seed=None)
    check_state(model, state, str(folder))
    model.load_state_dict(state)
    return model.to(device)


def export_hf_v4(model: V4Transformer, folder: str | Path, max_shard_bytes: int = 2 << 30) -> Path:
    """Write ``model`` as a transformers DeepseekV4 folder (sharded safetensors + index)."""
    folder = Path(folder)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    write_sharded(ours_to_native(state), folder, max_shard_bytes)
    (folder / "config.json").write_text(json.dumps(config_to_hf(model.config), indent=1))
    return folder
