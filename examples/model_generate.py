"""Build a preset, print its parameter budget, and decode with the latent cache.

python examples/model_generate.py [--preset tiny] [--prompt "def main("] [--tokens 24]

The weights are random unless you pass --checkpoint (a folder written by `engram train`),
so the text is noise; the point is the API: greedy vs. sampled decoding, stop sequences,
streaming, and that cached decoding gives the logits of a full recompute.
"""

from __future__ import annotations

import argparse

import torch
from engram_sdk.model import ModelCache, build_model, get_preset, load_checkpoint
from engram_sdk.model.info import count_parameters

from engram_sdk.tokenizer import get_tokenizer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--prompt", default="def main(")
    parser.add_argument("--tokens", type=int, default=24)
    args = parser.parse_args()

    info = count_parameters(get_preset(args.preset))
    print(
        f"{args.preset}: {info.total / 1e6:.1f}M total, {info.active_per_token / 1e6:.1f}M active "
        f"per token, Engram {info.engram_share_of_sparse:.0%} of sparse parameters"
    )
    model = load_checkpoint(args.checkpoint) if args.checkpoint else build_model(args.preset)
    model.eval()
    tok = get_tokenizer()
    prompt = tok.encode(args.prompt)

    greedy = model.generate(prompt, args.tokens)
    print("greedy :", repr(tok.decode(greedy)))
    sampled = model.generate(prompt, args.tokens, temperature=0.8, top_p=0.9, seed=1)
    print("sampled:", repr(tok.decode(sampled)))
    stopped = model.generate(prompt, args.tokens, stop=[greedy[3:5]])
    print(f"stop at greedy[3:5] -> {len(stopped)} tokens (greedy[:3] = {greedy[:3] == stopped})")
    print("stream :", end=" ", flush=True)
    for token in model.stream(prompt, 8):
        print(repr(tok.decode([token])), end=" ", flush=True)
    print()

    ids = torch.tensor([prompt + greedy])
    with torch.no_grad():
        full = model(ids)
        cache = ModelCache()
        steps = [model(ids[:, : len(prompt)], cache)]
        steps += [model(ids[:, i : i + 1], cache) for i in range(len(prompt), ids.shape[1])]
    diff = (torch.cat(steps, 1) - full).abs().max().item()
    print(f"cached vs full-recompute logits: max |diff| = {diff:.2e}")


if __name__ == "__main__":
    main()
