"""Train the `tiny` preset on this repository's own Python sources, save, resume, and generate.

python examples/train_tiny.py [folder] [--steps 40]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from engram_sdk.model import build_model, load_checkpoint
from engram_sdk.model.train import TokenStream, TrainConfig, train

from engram_sdk.corpus import read_token_ids
from engram_sdk.tokenizer import get_tokenizer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", nargs="?", default=str(Path(__file__).parent.parent / "model"))
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()

    cfg = TrainConfig(steps=args.steps, batch_size=4, seq_len=64, warmup_steps=5)
    half = cfg.model_copy(update={"steps": args.steps // 2})
    ids = read_token_ids([args.folder])
    with tempfile.TemporaryDirectory() as out:
        model = build_model("tiny", seed=0)
        first = train(model, TokenStream(ids), half, out_dir=out)
        ckpt = Path(out) / f"step-{half.steps:06d}"
        resumed = build_model("tiny", seed=1)  # weights, optimizer, data position, RNG come back
        rest = train(resumed, TokenStream(ids), cfg, out_dir=out, resume=ckpt)
        losses = first + rest
        print(f"loss: first {losses[0]:.3f} -> last {losses[-1]:.3f} over {len(losses)} steps")
        model = load_checkpoint(Path(out) / f"step-{cfg.steps:06d}")
    tok = get_tokenizer()
    new = model.generate(tok.encode("def "), max_new_tokens=20)
    print("greedy continuation of 'def ':", repr(tok.decode(new)))


if __name__ == "__main__":
    main()
