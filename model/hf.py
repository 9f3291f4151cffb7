"""Hugging Face DeepSeek-V3 checkpoints ⇄ this model: the one place for the name mapping.

``load_hf(folder)`` reads ``config.json`` and (sharded) safetensors in the HF layout and
returns our model with Engram, DSA and mHC off (FP8 weights with ``weight_scale_inv`` block
scales, as DeepSeek-V3 ships them, are dequantised to float32); ``export_hf(model, folder)`` writes it back.
Routed experts are read per expert (``experts.{e}.gate_proj`` …, the layout of published
checkpoints) or fused (``experts.gate_up_proj`` (E, 2I, D), ``experts.down_proj`` (E, D, I));
they are written per expert. HF applies interleaved RoPE by
de-interleaving q and k identically, which leaves attention scores unchanged, so the rotary
weights need no permutation (``rope_interleave`` must be true).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from engram_sdk.model.config import ModelConfig
from engram_sdk.model.quant import dequantize_state
from safetensors.torch import load_file, save_file

from engram_sdk.errors import InputError

_LAYER = {
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "self_attn.q_proj.weight": "attn.wq.weight",
    "self_attn.q_a_proj.weight": "attn.wq_a.weight",
    "self_attn.q_a_layernorm.weight": "attn.q_norm.weight",
    "self_attn.q_b_proj.weight": "attn.wq_b.weight",
    "self_attn.kv_a_proj_with_mqa.weight": "attn.wkv_a.weight",
    "self_attn.kv_a_layernorm.weight": "attn.kv_norm.weight",
    "self_attn.kv_b_proj.weight": "attn.wkv_b.weight",
    "self_attn.o_proj.weight": "attn.wo.weight",
    "mlp.gate_proj.weight": "ffn.w1.weight",
    "mlp.up_proj.weight": "ffn.w3.weight",
    "mlp.down_proj.weight": "ffn.w2.weight",
    "mlp.gate.weight": "ffn.gate.weight",
    "mlp.gate.e_score_correction_bias": "ffn.gate.bias",
    "mlp.shared_experts.gate_proj.weight": "ffn.shared.w1.weight",
    "mlp.shared_experts.up_proj.weight": "ffn.shared.w3.weight",
    "mlp.shared_experts.down_proj.weight": "ffn.shared.w2.weight",
}
_EXPERT = {"gate_proj": "w1", "up_proj": "w3", "down_proj": "w2"}
_TOP = {
    "model.embed_tokens.weight": "embed.weight",
    "model.norm.weight": "norm.weight",
    "lm_head.weight": "head.weight",
}


def _yarn_mscale(factor: float, mscale: float = 1.0) -> float:
    return 1.0 if factor <= 1 else 0.1 * mscale * math.log(factor) + 1.0


def rope_from_hf(hf: dict[str, Any]) -> dict[str, Any]:
    """Our RoPE fields for an HF config, with HF's YaRN rules.

    HF applies YaRN whenever ``rope_type`` is yarn; it scales cos/sin by ``attention_factor``
    (given, else mscale(factor, mscale) / mscale(factor, mscale_all_dim) when both are
    set, else mscale(factor)), and the softmax by mscale(factor, mscale_all_dim)² only when
    ``mscale_all_dim`` is set.
    """
    rope = hf.get("rope_scaling") or hf.get("rope_parameters") or {}  # transformers 4 / 5 layouts
    theta = hf.get("rope_theta") or rope.get("rope_theta", 10000.0)
    if rope.get("rope_type", rope.get("type")) != "yarn":
        return {"rope_theta": theta, "yarn": False}
    original = rope.get("original_max_position_embeddings", 4096)
    factor = rope.get("factor") or hf.get("max_position_embeddings", original) / original
    mscale, mscale_all_dim = rope.get("mscale"), rope.get("mscale_all_dim")
    attention_factor = rope.get("attention_factor")
    if attention_factor is None:
        attention_factor = (
            _yarn_mscale(factor, mscale) / _yarn_mscale(factor, mscale_all_dim)
            if mscale and mscale_all_dim
            else _yarn_mscale(factor)
        )
    return {
        "rope_theta": theta,
        "yarn": True,
        "rope_factor": factor,
        "original_seq_len": original,
        "beta_fast": rope.get("beta_fast") or 32,
        "beta_slow": rope.get("beta_slow") or 1,
        "mscale": mscale_all_dim or 0.0,
        "rope_attention_factor": attention_factor,
    }


def rope_to_hf(cfg: ModelConfig) -> dict[str, Any]:
    """HF ``rope_scaling`` for our config (empty when YaRN is off); inverse of rope_from_hf."""
    if not cfg.yarn_active:
        return {}
    return {
        "rope_type": "yarn",
        "factor": cfg.rope_factor,
        "original_max_position_embeddings": cfg.original_seq_len,
        "beta_fast": cfg.beta_fast,
        "beta_slow": cfg.beta_slow,
        "mscale_all_dim": cfg.mscale,
        "attention_factor": cfg.rope_attention_factor,
    }


def config_from_hf(hf: dict[str, Any]) -> ModelConfig:
    """Our config for an HF ``config.json`` (Engram, DSA and mHC off)."""
    if hf.get("rope_interleave", True) is not True:
        raise InputError("only rope_interleave=true DeepSeek-V3 checkpoints are supported")
    return ModelConfig(
        tokenizer=None,
        vocab_size=hf["vocab_size"],
        dim=hf["hidden_size"],
        n_layers=hf["num_hidden_layers"],
        n_dense_layers=hf.get("first_k_dense_replace", 0),
        inter_dim=hf["intermediate_size"],
        norm_eps=hf.get("rms_norm_eps", 1e-6),
        max_seq_len=hf.get("max_position_embeddings", 4096),
        n_heads=hf["num_attention_heads"],
        q_lora_rank=hf.get("q_lora_rank") or 0,
        kv_lora_rank=hf["kv_lora_rank"],
        qk_nope_head_dim=hf["qk_nope_head_dim"],
        qk_rope_head_dim=hf["qk_rope_head_dim"],
        v_head_dim=hf["v_head_dim"],
        **rope_from_hf(hf),
        n_routed_experts=hf["n_routed_experts"],
        n_shared_experts=hf.get("n_shared_experts", 0),
        n_activated_experts=hf["num_experts_per_tok"],
        n_expert_groups=hf.get("n_group", 1),
        n_limited_groups=hf.get("topk_group", 1),
        route_scale=hf.get("routed_scaling_factor", 1.0),
        norm_topk_prob=hf.get("norm_topk_prob", True),
        moe_inter_dim=hf["moe_intermediate_size"],
        hc_mult=1,
        dsa_topk=0,
        engram_layer_ids=[],
    )


def _read_hf_weights(folder: Path) -> dict[str, torch.Tensor]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    elif (folder / "model.safetensors").is_file():
        files = ["model.safetensors"]
    else:
        raise InputError(f"{folder}: no model.safetensors or model.safetensors.index.json")
    state: dict[str, torch.Tensor] = {}
    for name in files:
        state.update(load_file(str(folder / name)))
    return state


def hf_to_ours(state: dict[str, torch.Tensor], cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """Rename an HF state dict; per-expert weights are stacked into (E, …) tensors."""
    out: dict[str, torch.Tensor] = {}
    experts: dict[tuple[int, str], dict[int, torch.Tensor]] = {}
    for name, t in state.items():
        if name in _TOP:
            out[_TOP[name]] = t
            continue
        parts = name.split(".")
        if parts[:2] != ["model", "layers"]:
            raise InputError(f"unknown HF parameter {name!r}")
        i, rest = int(parts[2]), ".".join(parts[3:])
        if rest == "mlp.experts.gate_up_proj":
            gate, up = t.chunk(2, dim=1)
            out[f"blocks.{i}.ffn.expert_w1"], out[f"blocks.{i}.ffn.expert_w3"] = (
                gate.contiguous(),
                up.contiguous(),
            )
        elif rest == "mlp.experts.down_proj":
            out[f"blocks.{i}.ffn.expert_w2"] = t
        elif rest.startswith("mlp.experts.") and len(parts) == 8 and parts[6] in _EXPERT:
            experts.setdefault((i, _EXPERT[parts[6]]), {})[int(parts[5])] = t
        elif rest in _LAYER:
            out[f"blocks.{i}.{_LAYER[rest]}"] = t
        else:
            raise InputError(f"unknown HF parameter {name!r}")
    for (i, w), per in experts.items():
        if sorted(per) != list(range(cfg.n_routed_experts)):
            raise InputError(
                f"layer {i}: expected experts 0..{cfg.n_routed_experts - 1}, found {sorted(per)[:5]}…"
            )
        out[f"blocks.{i}.ffn.expert_{w}"] = torch.stack([per[e] for e in range(len(per))])
    return out


def ours_to_hf(state: dict[str, torch.Tensor], cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """Inverse of :func:`hf_to_ours`."""
    top = {v: k for k, v in _TOP.items()}
    layer = {v: k for k, v in _LAYER.items()}
    out: dict[str, torch.Tensor] = {}
    hf_name = {v: k for k, v in _EXPERT.items()}
    for name, t in state.items():
        if name in top:
            out[top[name]] = t
            continue
        parts = name.split(".")
        i, rest = int(parts[1]), ".".join(parts[2:])
        if rest.startswith(
            "ffn.expert_"
        ):  # written per expert, the layout of published checkpoints
            for e in range(t.shape[0]):
                out[
                    f"model.layers.{i}.mlp.experts.{e}.{hf_name[rest[len('ffn.expert_') :]]}.weight"
                ] = t[e].contiguous()
        elif rest in layer:
            out[f"model.layers.{i}.{layer[rest]}"] = t
        else:
            raise InputError(
                f"{name!r} has no HF DeepSeek-V3 equivalent (is Engram, DSA or mHC on?)"
            )
    return out


def write_sharded(state: dict[str, torch.Tensor], folder: Path, max_shard_bytes: int) -> None:
    """Write ``state`` as HF sharded safetensors plus ``model.safetensors.index.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name in sorted(state):
        nbytes = state[name].numel() * state[name].element_size()
        if size + nbytes > max_shard_bytes and shards[-1]:
            shards.append({})
            size = 0
        shards[-1][name] = state[name]
        size += nbytes
    weight_map = {}
    for n, shard in enumerate(shards):
        fname = f"model-{n + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(folder / fname), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(shard, fname))
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map})
    )


def load_hf(folder: str | Path, device: str = "cpu") -> torch.nn.Module:
    """Our model from an HF DeepSeek-V3 folder (config.json + safetensors, sharded or not)."""
    from engram_sdk.model import build_model
    from engram_sdk.model.checkpoint import check_state

    folder = Path(folder)
    hf_cfg = json.loads((folder / "config.json").read_text())
    cfg = config_from_hf(hf_cfg)
    model = build_model(cfg, seed=None)
    state = hf_to_ours(dequantize_state(_read_hf_weights(folder)), cfg)
    if "head.weight" not in state and hf_cfg.get("tie_word_embeddings"):
        state["head.weight"] = state["embed.weight"]
    check_state(model, state, str(folder))
    model.load_state_dict(state)
    return model.to(device)


def export_hf(model: torch.nn.Module, folder: str | Path, max_shard_bytes: int = 2 << 30) -> Path:
    """Write ``model`` as an HF DeepSeek-V3 folder (sharded safetensors + index)."""
    cfg: ModelConfig = model.config
    if cfg.engram_layer_ids or cfg.hc_mult != 1 or cfg.dsa_topk:
        raise InputError(
            "only models with Engram, DSA and mHC off have an HF DeepSeek-V3 equivalent"
        )
    if cfg.score_func != "sigmoid" or not cfg.gate_bias:
        raise InputError("HF DeepSeek-V3 routes with sigmoid scores and a correction bias only")
    folder = Path(folder)
    state = ours_to_hf(
        {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, cfg
    )
    write_sharded(state, folder, max_shard_bytes)
    hf = {
        "architectures": ["DeepseekV3ForCausalLM"],
        "model_type": "deepseek_v3",
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.dim,
        "intermediate_size": cfg.inter_dim,
        "moe_intermediate_size": cfg.moe_inter_dim,
        "num_hidden_layers": cfg.n_layers,
        "num_attention_heads": cfg.n_heads,
        "num_key_value_heads": cfg.n_heads,
        "n_shared_experts": cfg.n_shared_experts,
        "n_routed_experts": cfg.n_routed_experts,
        "routed_scaling_factor": cfg.route_scale,
        "kv_lora_rank": cfg.kv_lora_rank,
        "q_lora_rank": cfg.q_lora_rank or None,
        "qk_rope_head_dim": cfg.qk_rope_head_dim,
        "v_head_dim": cfg.v_head_dim,
        "qk_nope_head_dim": cfg.qk_nope_head_dim,
        "n_group": cfg.n_expert_groups,
        "topk_group": cfg.n_limited_groups,
        "num_experts_per_tok": cfg.n_activated_experts,
        "first_k_dense_replace": cfg.n_dense_layers,
        "norm_topk_prob": cfg.norm_topk_prob,
        "max_position_embeddings": cfg.max_seq_len,
        "rms_norm_eps": cfg.norm_eps,
        "rope_theta": cfg.rope_theta,
        "rope_scaling": rope_to_hf(cfg) or None,
        "rope_interleave": True,
        "tie_word_embeddings": False,
        "hidden_act": "silu",
        "attention_bias": False,
    }
    (folder / "config.json").write_text(json.dumps(hf, indent=1))
    return folder
