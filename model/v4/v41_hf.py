"""DeepSeek-V4.1 checkpoints ⇄ our V4.1 model: the one place for V4.1's name mapping.

transformers' ``DeepseekV41ForCausalLM`` already uses DeepSeek's own module names
(``layers.{i}.attn.wq_a``, ``ffn.experts.{e}.w1``, ``hc_attn_fn``); a saved folder puts
``model.`` in front of the backbone and calls the head ``lm_head``. Ours differ only in the
stacked routed experts (``ffn.expert_w1`` (E, I, D)), the shared expert (``ffn.shared``),
the mHC parameters (``hc_attn.fn``) and the Engram table (``engram.table.embedding``).
FP8 tensors with a ``.scale`` grid (experts, Engram rows) are dequantised to float32 on
load; a float Engram table's ``scale`` is unused (as in the reference) and dropped.
The DSpark draft layers (``mtp.*``) and the vision tower are skipped.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from engram_sdk.model.hf import _read_hf_weights, write_sharded
from engram_sdk.model.quant import dequantize_state
from engram_sdk.model.v4.v41_config import V41Config
from engram_sdk.model.v4.v41_model import V41Transformer, build_v41

from engram_sdk.errors import InputError

# ours → the checkpoint's, per layer, only where they differ
LAYER_NAMES = {
    **{f"hc_{site}.{p}": f"hc_{site}_{p}" for site in ("attn", "ffn")
       for p in ("fn", "base", "scale")},
    **{f"ffn.shared.{w}.weight": f"ffn.shared_experts.{w}.weight" for w in ("w1", "w2", "w3")},
    "engram.table.embedding.weight": "engram.embed.weight",
}  # fmt: skip
TOP_NAMES = {"embed.weight": "model.embed.weight", "norm.weight": "model.norm.weight",
             "head.weight": "lm_head.weight"}  # fmt: skip
_SKIPPED = re.compile(r"(?:model\.)?(?:mtp\.|vision\.|aligner\.|image_(?:start|end|newline)$)")
_LAYER = re.compile(r"(?:model\.)?layers\.(\d+)\.(.+)")
_EXPERT = re.compile(r"ffn\.experts\.(\d+)\.(w[123])\.weight")
_TOP = {**{v: k for k, v in TOP_NAMES.items()}, **{k: k for k in TOP_NAMES}}


def hf_to_ours(state: dict[str, torch.Tensor], cfg: V41Config) -> dict[str, torch.Tensor]:
    """Our state dict from a V4.1 checkpoint's tensors (FP8 ones already dequantised)."""
    back = {v: k for k, v in LAYER_NAMES.items()}
    out: dict[str, torch.Tensor] = {}
    experts: dict[tuple[str, str], dict[int, torch.Tensor]] = {}
    for name, t in state.items():
        if _SKIPPED.match(name) or name.endswith("engram.embed.scale"):
            continue  # a scale still here belongs to a float table: unused, as in the reference
        if name in _TOP:
            out[_TOP[name]] = t
            continue
        m = _LAYER.fullmatch(name)
        if m is None:
            raise InputError(f"unknown DeepseekV41 parameter {name!r}")
        i, rest = m.groups()
        expert = _EXPERT.fullmatch(rest)
        if expert is not None:
            experts.setdefault((i, expert.group(2)), {})[int(expert.group(1))] = t
        else:
            out[f"layers.{i}.{back.get(rest, rest)}"] = t
    for (i, w), per in experts.items():
        if sorted(per) != list(range(cfg.n_routed_experts)):
            raise InputError(f"layer {i}: expected experts 0..{cfg.n_routed_experts - 1}")
        out[f"layers.{i}.ffn.expert_{w}"] = torch.stack([per[e] for e in sorted(per)])
    return out


def ours_to_hf(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The reference's saved layout (``DeepseekV41ForCausalLM.state_dict()``) from ours;
    a float Engram table gets all-ones scales, as the reference initialises them."""
    out: dict[str, torch.Tensor] = {}
    for name, t in state.items():
        if name in TOP_NAMES:
            out[TOP_NAMES[name]] = t
            continue
        m = re.fullmatch(r"layers\.(\d+)\.(.+)", name)
        if m is None:
            raise InputError(f"{name!r} has no DeepseekV41 equivalent")
        i, rest = m.groups()
        if rest.startswith("ffn.expert_w"):
            for e in range(t.shape[0]):
                out[f"model.layers.{i}.ffn.experts.{e}.{rest[-2:]}.weight"] = t[e].contiguous()
            continue
        out[f"model.layers.{i}.{LAYER_NAMES.get(rest, rest)}"] = t
        if rest == "engram.table.embedding.weight":
            out[f"model.layers.{i}.engram.embed.scale"] = t.new_ones(t.shape[0], t.shape[1] // 32)
    return out


def _float_engram_scales(state: dict[str, torch.Tensor]) -> list[str]:
    return [
        name for name in state
        if name.endswith("engram.embed.scale")
        and state[name[: -len("scale")] + "weight"].dtype != torch.float8_e4m3fn
    ]  # fmt: skip


def config_from_hf(hf: dict[str, Any]) -> V41Config:
    """Our config for a DeepseekV41 ``config.json`` (composite with ``text_config``, or flat)."""
    text = hf.get("text_config") or hf
    try:
        return _config_from_text(text)
    except KeyError as missing:
        raise InputError(f"DeepseekV41 config.json lacks the field {missing}") from None


def _config_from_text(hf: dict[str, Any]) -> V41Config:
    from engram_sdk.model.v4.hf import ENGRAM_FIELDS, _rope_fields

    n = hf["num_hidden_layers"]
    head_dim = hf.get("head_dim", 512)
    kv_sources = hf["kv_source_layer_ids"]
    return V41Config(
        vocab_size=hf["vocab_size"], dim=hf["hidden_size"], n_layers=n,
        norm_eps=hf.get("rms_norm_eps", 1e-20), max_seq_len=hf.get("max_position_embeddings", 4096),
        n_heads=hf["num_attention_heads"], head_dim=head_dim,
        rope_head_dim=hf.get("qk_rope_head_dim", 64), q_lora_rank=hf["q_lora_rank"],
        o_groups=hf["o_groups"], o_lora_rank=hf["o_lora_rank"], window_size=hf["sliding_window"],
        compress_ratios=list(hf["compress_ratios"][:n]), kv_source_layer_ids=kv_sources,
        index_source_layer_ids=hf.get("index_source_layer_ids") or kv_sources,
        candidate_source_layer_id=hf.get("candidate_source_layer_id", -1),
        candidate_topk_blocks=hf.get("candidate_topk_blocks", 2048),
        candidate_block_size=hf.get("candidate_block_size", 8),
        index_n_heads=hf["index_n_heads"], index_head_dim=hf["index_head_dim"],
        index_topk=hf["index_topk"], **_rope_fields(hf),
        hc_mult=hf["hc_mult"], hc_sinkhorn_iters=hf["hc_sinkhorn_iters"], hc_eps=hf["hc_eps"],
        n_routed_experts=hf["n_routed_experts"], n_shared_experts=hf.get("n_shared_experts", 1),
        n_activated_experts=hf["num_experts_per_tok"], moe_inter_dim=hf["moe_intermediate_size"],
        score_func=hf.get("scoring_func", "sqrtsoftplus"), gate_temp=hf.get("gate_temp", 1.0),
        norm_topk_prob=hf.get("norm_topk_prob", True),
        route_scale=hf.get("routed_scaling_factor", 1.5), swiglu_limit=hf.get("swiglu_limit", 10.0),
        n_mtp_layers=hf.get("num_nextn_predict_layers", 0),
        **{k: hf[k] for k in ENGRAM_FIELDS if hf.get(k) is not None},
    )  # fmt: skip


def config_to_hf(cfg: V41Config) -> dict[str, Any]:
    """A DeepseekV41 ``config.json`` for our config: composite, as the released checkpoint's
    (the text fields under ``text_config``)."""
    from engram_sdk.model.v4.hf import ENGRAM_FIELDS

    yarn = {}
    if cfg.rope_factor > 1:
        yarn = {"rope_type": "yarn", "factor": cfg.rope_factor, "beta_fast": cfg.beta_fast,
                "beta_slow": cfg.beta_slow, "original_max_position_embeddings": cfg.original_seq_len}  # fmt: skip
    text = {
        "model_type": "deepseek_v41_text",
        "vocab_size": cfg.vocab_size, "hidden_size": cfg.dim, "num_hidden_layers": cfg.n_layers,
        "rms_norm_eps": cfg.norm_eps, "max_position_embeddings": cfg.max_seq_len,
        "num_attention_heads": cfg.n_heads, "head_dim": cfg.head_dim,
        "qk_rope_head_dim": cfg.rope_head_dim, "q_lora_rank": cfg.q_lora_rank,
        "o_groups": cfg.o_groups, "o_lora_rank": cfg.o_lora_rank, "sliding_window": cfg.window_size,
        "compress_ratios": cfg.compress_ratios, "kv_source_layer_ids": cfg.kv_source_layer_ids,
        "index_source_layer_ids": cfg.index_source_layer_ids,
        "candidate_source_layer_id": cfg.candidate_source_layer_id,
        "candidate_topk_blocks": cfg.candidate_topk_blocks,
        "candidate_block_size": cfg.candidate_block_size, "index_n_heads": cfg.index_n_heads,
        "index_head_dim": cfg.index_head_dim, "index_topk": cfg.index_topk,
        "rope_theta": cfg.rope_theta, "compress_rope_theta": cfg.compress_rope_theta,
        "rope_scaling": yarn or None, "hc_mult": cfg.hc_mult,
        "hc_sinkhorn_iters": cfg.hc_sinkhorn_iters, "hc_eps": cfg.hc_eps,
        "n_routed_experts": cfg.n_routed_experts, "n_shared_experts": cfg.n_shared_experts,
        "num_experts_per_tok": cfg.n_activated_experts, "moe_intermediate_size": cfg.moe_inter_dim,
        "scoring_func": cfg.score_func, "gate_temp": cfg.gate_temp,
        "norm_topk_prob": cfg.norm_topk_prob, "routed_scaling_factor": cfg.route_scale,
        "swiglu_limit": cfg.swiglu_limit, "num_nextn_predict_layers": cfg.n_mtp_layers,
        "tie_word_embeddings": False, "hidden_act": "silu",
    } | {k: getattr(cfg, k) for k in ENGRAM_FIELDS if getattr(cfg, k) is not None}  # fmt: skip
    return {"architectures": ["DeepseekV41ForCausalLM"], "model_type": "deepseek_v41",
            "text_config": text, "tie_word_embeddings": False}  # fmt: skip


def load_hf_v41(folder: str | Path, device: str = "cpu") -> V41Transformer:
    """Our V4.1 model from a DeepseekV41 folder (config.json + safetensors)."""
    from engram_sdk.model.checkpoint import check_state

    folder = Path(folder)
    cfg = config_from_hf(json.loads((folder / "config.json").read_text()))
    raw = _read_hf_weights(folder)
    for name in _float_engram_scales(raw):  # or dequantize_state would multiply them in
        del raw[name]
    state = hf_to_ours(dequantize_state(raw), cfg)
    model = build_v41(cfg, seed=None)
    check_state(model, state, str(folder))
    model.load_state_dict(state)
    return model.to(device)


def export_hf_v41(
    model: V41Transformer, folder: str | Path, max_shard_bytes: int = 2 << 30
) -> Path:
    """Write ``model`` as a DeepseekV41 folder (sharded safetensors + index, float32)."""
    folder = Path(folder)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    write_sharded(ours_to_hf(state), folder, max_shard_bytes)
    (folder / "config.json").write_text(json.dumps(config_to_hf(model.config), indent=1))
    return folder
