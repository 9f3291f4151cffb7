"""DeepSeek-V4 attention on CPU: the O(T·k) path vs the dense reference, one layer, prefill.

    python benchmarks/v4_attention_cpu.py [--tokens 1024,2048,4096] [--heads 8] [--types ...]

One layer of each type (sliding, CSA, HCA) with DeepSeek-V4-Flash's attention shapes
(head_dim 512, window 128, CSA ratio 4 with 64 index heads of 128 and top-512, HCA ratio
128; fewer query heads for CPU), one-shot prefill of T tokens in float32. Each case runs in
its own process: CPU seconds (process time) and peak RSS over the process's RSS after the
layer was built. Dense and sparse are printed side by side with their ratio.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

TYPES = ("sliding_attention", "compressed_sparse_attention", "heavily_compressed_attention")


def one_case(kind: str, tokens: int, heads: int, dense: bool) -> dict:
    """Run one prefill in this process → CPU seconds and extra peak MiB."""
    import torch
    from engram_sdk.model.v4 import V4Config
    from engram_sdk.model.v4.attention import V4Attention
    from engram_sdk.model.v4.rope import v4_frequencies

    cfg = V4Config(
        dim=1024, n_heads=heads, head_dim=512, rope_head_dim=64, q_lora_rank=512, o_groups=4,
        o_lora_rank=256, window_size=128, compress_ratio_csa=4, compress_ratio_hca=128,
        index_n_heads=64, index_head_dim=128, index_topk=512, max_seq_len=tokens,
        n_layers=3, attn_types=list(TYPES), mlp_types=["moe"] * 3,
    )  # fmt: skip
    torch.manual_seed(0)
    attn = V4Attention(cfg, TYPES.index(kind)).eval()
    attn.dense_reference = dense
    freqs = v4_frequencies(cfg, kind != "sliding_attention")
    x = torch.randn(1, tokens, cfg.dim)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.process_time()
    with torch.no_grad():
        out = attn(x, freqs)
    cpu = time.process_time() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"cpu_s": cpu, "extra_mib": (peak - base) / 1024, "norm": float(out.norm())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", default="1024,2048,4096")
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--types", default=",".join(TYPES), help="layer types, comma-separated")
    p.add_argument("--case", default=None, help=argparse.SUPPRESS)  # kind,tokens,dense
    args = p.parse_args()
    if args.case:
        kind, tokens, dense = args.case.split(",")
        print(json.dumps(one_case(kind, int(tokens), args.heads, dense == "1")))
        return
    print(f"{'layer':30} {'T':>6} {'dense CPU s':>12} {'sparse CPU s':>13} {'ratio':>7} "
          f"{'dense MiB':>10} {'sparse MiB':>11} {'ratio':>7} {'|out| equal':>11}")  # fmt: skip
    for kind in args.types.split(","):
        if kind not in TYPES:
            raise SystemExit(f"--types: {kind!r} is not one of {', '.join(TYPES)}")
        for tokens in (int(t) for t in args.tokens.split(",")):
            r = {}
            for dense in ("1", "0"):  # the baseline first, then the new path, same machine
                run = subprocess.run(
                    [sys.executable, __file__, "--heads", str(args.heads),
                     "--case", f"{kind},{tokens},{dense}"],
                    capture_output=True, text=True, check=True,
                )  # fmt: skip
                r[dense] = json.loads(run.stdout.splitlines()[-1])
            d, s = r["1"], r["0"]
            print(f"{kind:30} {tokens:>6} {d['cpu_s']:12.2f} {s['cpu_s']:13.2f} "
                  f"{d['cpu_s'] / s['cpu_s']:6.2f}x {d['extra_mib']:10.0f} {s['extra_mib']:11.0f} "
                  f"{d['extra_mib'] / max(s['extra_mib'], 1):6.1f}x "
                  f"{abs(d['norm'] - s['norm']) <= 1e-4 * d['norm']!s:>11}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
