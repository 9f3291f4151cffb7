"""GPU correctness check of store-served Engram tables (run under compute-sanitizer too).

    python benchmarks/prefetch_gpu_check.py [--backends dram,shards,lmdb,shards+cache,lmdb+hot]

For each backend, through the table runtime on CUDA with side-stream copies and
``runtime.prefetch`` overlap on: prefill
logits and cached-decoding logits bitwise equal to the GPU ``nn.Embedding`` tables, and one
training step of ``TrainableStoreTable`` + ``StoreTableOptimizer`` (SGD) leaves the store rows
equal (float32 tolerance) to the dense update of the GPU table; counts host-side hashing done
on the model's thread (expected 0: the fetch threads hash). Prints one line per backend,
then ``graphed`` lines: decode steps recorded as one CUDA graph with the pinned rows
gathered in place inside it (``index_select``, the Triton kernel, the Triton kernel with a
warmed hot-row cache) or staged (shards), bitwise against the same graph over GPU rows.
``--backends dram+hot`` checks eager steps reading in place through the hot cache.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
from pathlib import Path

import torch
import torch.nn.functional as F


def main() -> None:
    from engram_sdk.model import ModelCache, build_model, get_preset
    from engram_sdk.stores import open_store

    from engram_sdk.table_runtime import attach_tables, table_name

    ap = argparse.ArgumentParser()
    ap.add_argument("--backends", default="dram,shards,lmdb,shards+cache,lmdb+hot")
    ap.add_argument("--seq", type=int, default=32)
    args = ap.parse_args()
    dev = "cuda"
    cfg = get_preset("tiny", tokenizer=None, vocab_size=300, max_seq_len=128)
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randint(0, 300, (2, args.seq), generator=gen) for _ in range(3)]
    tmp = Path(tempfile.mkdtemp())

    def run(step, prefetch) -> list[torch.Tensor]:
        out = []
        with torch.no_grad():
            for i, ids in enumerate(batches):
                if prefetch is not None and i + 1 < len(batches):
                    prefetch(batches[i + 1].pin_memory())
                out.append(step(ids.pin_memory()))
            cache = ModelCache()
            parts = [step(batches[0][:, :5], cache)]
            parts += [step(batches[0][:, i : i + 1], cache) for i in range(5, args.seq)]
            out.append(torch.cat(parts, 1))
        return out

    ref = build_model(cfg, device=dev, seed=2).eval()
    want = run(ref, None)
    ids = batches[0]
    logits = ref(ids[:, :-1].to(dev))
    F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1).to(dev)).backward()
    for backend in args.backends.split(","):
        scheme = backend.split("+")[0]
        uri = "dram://" if scheme == "dram" else f"{scheme}://{tmp / backend.replace('+', '_')}"
        model = build_model(cfg, device=dev, seed=2).eval()
        store = open_store(uri, "a", pinned=scheme == "dram")
        cache_rows = 300 if "cache" in backend else 0
        hot_rows = 4096 if "hot" in backend else 0  # a GPU hot-row cache in the fetch path
        runtime = attach_tables(model, store, cache_rows=cache_rows, hot_rows=hot_rows)
        threads: list[str] = []
        hash_torch = model.hasher.hash_torch

        def spy(
            canon: torch.Tensor, *a: object, threads=threads, real=hash_torch, **k: object
        ) -> torch.Tensor:
            if not canon.is_cuda:
                threads.append(threading.current_thread().name)
            return real(canon, *a, **k)

        model.hasher.hash_torch = spy
        got = run(runtime, runtime.prefetch)
        on_main = sum(name == "MainThread" for name in threads)
        equal = all(torch.equal(a, b) for a, b in zip(got, want, strict=True))
        d = runtime.stats.as_dict()
        runtime.detach()
        runtime = attach_tables(
            model, store, export=False, trainable=True, cache_rows=cache_rows, hot_rows=hot_rows
        )
        opt = runtime.optimizer(lr=0.1, kind="sgd")
        logits = runtime(ids[:, :-1].pin_memory())
        F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1).to(dev)
        ).backward()
        opt.step()
        err = 0.0
        for layer, t in ref.engram_tables().items():
            w = t.embedding.weight.detach() - 0.1 * t.embedding.weight.grad
            stored = torch.from_numpy(store.gather(table_name(layer), torch.arange(t.rows).numpy()))
            err = max(err, (stored - w.cpu()).abs().max().item())
        print(
            f"{backend:14s} bitwise_equal={equal} train_max_abs_err={err:.2e} "
            f"dedup={d['dedup_ratio']:.2f} reused_prefetches={d['reused_prefetches']} "
            f"hit_rate={d['cache_hit_rate']} host_hashes={len(threads)} on_main_thread={on_main}"
        )
        runtime.detach()
        store.close()
    dense = dict(n_dense_layers=cfg.n_layers, hc_mult=1)  # recordable: no MoE
    graphed_cfg = get_preset("tiny", tokenizer=None, vocab_size=300, max_seq_len=128, **dense)
    graphed_check(graphed_cfg, dev, tmp)


def graphed_check(cfg, dev: str, folder: Path, steps: int = 12) -> None:
    """Graphed decoding vs the same graph over GPU rows: dram:// pinned rows read in place
    inside the graph; shards:// rows staged by the host before each replay."""
    from engram_sdk.model import ModelCache, build_model
    from engram_sdk.model.batch_cache import stack_caches

    from engram_sdk.table_runtime import attach_tables
    from engram_sdk.table_runtime.graph import graph_decode

    ids = torch.randint(0, 300, (4, 16), generator=torch.Generator().manual_seed(5))

    def decode(step, model) -> torch.Tensor:
        cache = ModelCache()
        logits = step(ids, cache)[:, -1]
        cache = stack_caches(
            [cache], capacity=16 + steps + 2, engram_context=model.hasher.context, pad_id=0
        )
        graph = graph_decode(step, cache)
        produced = []
        for _ in range(steps):
            logits = graph.step(logits.argmax(-1, keepdim=True).cpu())
            produced.append(logits.clone())
        graph.finish()
        return torch.stack(produced)

    with torch.no_grad():
        reference = build_model(cfg, device=dev, seed=2).eval()
        want = decode(reference, reference)
        cache, produced = ModelCache(), []
        logits = reference(ids, cache)[:, -1]
        for _ in range(steps):
            logits = reference(logits.argmax(-1, keepdim=True).cpu(), cache)[:, -1]
            produced.append(logits)
        eager = torch.stack(produced)
        for backend in ("dram", "dram+triton", "dram+hot", "shards"):
            served = build_model(cfg, device=dev, seed=2).eval()
            uri = f"shards://{folder / 'graphed'}" if backend == "shards" else "dram://"
            hot = 4096 if "hot" in backend else 0  # warmed: hits from the GPU, misses in place
            kernel = "triton" if "triton" in backend else "auto"
            runtime = attach_tables(served, uri, hot_rows=hot, in_place_kernel=kernel)
            if hot:
                runtime.warm_hot_rows(ids.reshape(-1), limit=hot // 2)
            got = decode(runtime, served)
            hits = [t.in_place_hits() for t in runtime.tables.values()]
            runtime.detach()
            print(
                f"{'graphed ' + backend:14s} bitwise_equal={torch.equal(got, want)} "
                f"vs_eager_max_abs_diff={(want - eager).abs().max().item():.2e} "
                f"replays={steps - 1} in_place_hits={hits}"
            )


if __name__ == "__main__":
    main()
