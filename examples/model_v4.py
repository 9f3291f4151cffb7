"""DeepSeek-V3 / V4 / V4.1 side by side: presets of the released models counted on the meta
device, a tiny V4.1 (Engram with a DEAD position) run on CPU, exported in DeepSeek's layout
and loaded back, and an FP8 Engram table copied into an LMDB store.

    python examples/model_v4.py [--out DIR]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from engram_sdk.model.info import count_parameters
from engram_sdk.model.spec import get_spec
from engram_sdk.model.v4.engram import iter_engram_chunks
from engram_sdk.model.v4.info import count_v4_parameters, count_v41_parameters
from engram_sdk.stores import open_store
from engram_sdk.stores.fp8_rows import encode_rows, gather_fp8, import_fp8_table
from safetensors.torch import save_file


def preset_table() -> str:
    lines = ["| preset | total | active / token | Engram tables |", "|---|---|---|---|"]
    for arch in ("deepseek-v3", "deepseek-v4", "deepseek-v4.1"):
        spec = get_spec(arch)
        for name in spec.presets:
            if not name.startswith("deepseek"):
                continue
            cfg = spec.config(name)
            counter = {"deepseek-v3": count_parameters, "deepseek-v4": count_v4_parameters,
                       "deepseek-v4.1": count_v41_parameters}[arch]  # fmt: skip
            report = counter(cfg)
            lines.append(
                f"| {name} | {report.total / 1e9:.1f} B | {report.active_per_token / 1e9:.1f} B"
                f" | {report.engram_tables / 1e9:.1f} B |"
            )
    return "\n".join(lines)


def tiny_v41_round_trip(out: Path) -> None:
    spec = get_spec("deepseek-v4.1")
    model = spec.build(spec.config()).eval()
    ids = torch.randint(
        0, model.config.vocab_size, (1, 16), generator=torch.Generator().manual_seed(0)
    )
    mask = torch.ones_like(ids, dtype=torch.bool)
    mask[0, 8] = False  # say, an image placeholder: its n-grams are not looked up
    with torch.no_grad():
        logits = model(ids, mask)
        spec.export_hf(model, out / "v41")
        again = spec.load_hf(out / "v41").eval()(ids, mask)
    prompt = ids[0, :9].tolist()
    print(
        f"tiny V4.1: logits {tuple(logits.shape)}, reload max |diff| = "
        f"{(again - logits).abs().max():.1e}; cached greedy {model.generate(prompt, 8)}"
    )


def fp8_table_into_store(out: Path) -> None:
    rows = torch.randn(5000, 256)
    raw = torch.from_numpy(encode_rows(rows)).view(torch.uint8)
    values, scales = raw[:, :256].contiguous().view(torch.float8_e4m3fn), raw[:, 256:].contiguous()
    ckpt = out / "ckpt"
    ckpt.mkdir(exist_ok=True)
    save_file({"layers.1.engram.embed.weight": values, "layers.1.engram.embed.scale": scales},
              str(ckpt / "model.safetensors"))  # fmt: skip
    with open_store(f"lmdb://{out / 'store'}", "w") as store:
        spec = import_fp8_table(store, "engram.1", iter_engram_chunks(ckpt, 1, 2048),
                                rows=5000, dim=256)  # fmt: skip
        back = gather_fp8(store, "engram.1", torch.arange(5000).numpy(), 256)
    error = ((back - rows).norm() / rows.norm()).item()
    print(f"FP8 Engram table: {spec.row_bytes} bytes a row, relative error vs float32 {error:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=None, help="folder for the files (default: temporary)"
    )
    args = parser.parse_args()
    print(preset_table())
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        tiny_v41_round_trip(out)
        fp8_table_into_store(out)


if __name__ == "__main__":
    main()
