"""MILAN speed on CPU and its within-network rows on the synthetic corpus.

    python benchmarks/bench_milan.py                       # speed: encode, train/epoch, decode rates
    python benchmarks/bench_milan.py --eval                 # + milan-eval within-network, rerank and greedy
    python benchmarks/bench_milan.py --backbone resnet18-random   # before the synth backbone exists

Speed is measured on one synthetic config (train split to fit, all units to
decode); `--eval` runs `eval.evaluate` exactly as `milan-eval --describer
milan` does and prints, per split, MILAN's value and 95% interval next to the
best floor's for BERTScore and retrieval.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo's `eval` package, not a namespace


def speed(args) -> None:
    import milannotations as mn
    from baselines.milan.describer import MilanDescriber

    train = mn.UnitSet(mn.load(args.config, split="train"), annotated=True)
    parts = mn.load(args.config)
    everything = mn.UnitSet(mn.concatenate([parts["train"], parts["test"]]), annotated=False)
    with tempfile.TemporaryDirectory() as cache:
        d = MilanDescriber(backbone=args.backbone, epochs=args.epochs, cache=cache, progress=False,
                           device=args.device)
        t = time.perf_counter()
        feats = d.encode(everything)
        enc_s = time.perf_counter() - t
        print(f"backbone {d._encoder.backbone.signature}: feature size {feats.shape[-1]}, k={feats.shape[1]}")
        print(f"encode (cold cache): {len(everything)} units in {enc_s:.1f} s = {len(everything) / enc_s:.1f} units/s")
        t = time.perf_counter()
        d.encode(everything)
        print(f"encode (warm cache): {len(everything) / (time.perf_counter() - t):.0f} units/s")
        t = time.perf_counter()
        d.fit(train)
        fit_s = time.perf_counter() - t
    h = d.model.info["history"]
    ep = h["epoch_s"]
    print(f"fit on {len(train)} units: {fit_s:.1f} s total; LM {h['lm_epochs']} epochs; decoder {h['decoder_epochs']} "
          f"epochs (best {h['best_epoch']}), {sum(ep) / len(ep):.2f} s/epoch incl. validation "
          f"(min {min(ep):.2f}); val BLEU best {max(h['val_bleu']):.1f}")
    for strategy, beam in (("greedy", 1), ("beam", 50), ("rerank", 50)):
        t = time.perf_counter()
        out = d.model.describe(feats, strategy=strategy, beam=beam, lam=0.2)
        s = time.perf_counter() - t
        print(f"decode {strategy:6s} beam {beam:2d}: {len(out)} units in {s:.2f} s = {len(out) / s:.1f} units/s; "
              f"e.g. {out[:3]}")


def evaluation(args) -> None:
    from eval import evaluate

    for strategy in args.strategies.split(","):
        t = time.perf_counter()
        res = evaluate("milan", benchmark="synth", protocol="within-network", scorer="offline", seed=0,
                       describer_args={"strategy": strategy, "backbone": args.backbone, "epochs": args.epochs,
                                       "progress": False},
                       output=f"{args.output}/{strategy}" if args.output else None, progress=False)
        print(f"\n== milan strategy={strategy}: {time.perf_counter() - t:.0f} s wall; timing {res['timing']}")
        for split in res["splits"]:
            cells = []
            for metric in ("bertscore_f1", "retrieval_top1", "retrieval_mrr", "bleu"):
                m, f = split["metrics"][metric], split["floor"][metric]
                sep = "above" if m["ci95"][0] > f["ci95"][1] else "OVERLAP"
                cells.append(f"{metric} {m['value']:.3f} [{m['ci95'][0]:.3f},{m['ci95'][1]:.3f}] vs floor "
                             f"{f['describer']} {f['value']:.3f} [{f['ci95'][0]:.3f},{f['ci95'][1]:.3f}] {sep}")
            print(f"{split['name']} (n={split['n_units']}, held_out={split['held_out']}):\n  " + "\n  ".join(cells))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="synth-shallow-plain")
    p.add_argument("--backbone", default="synth")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--eval", action="store_true", help="also run the within-network evaluation")
    p.add_argument("--skip-speed", action="store_true")
    p.add_argument("--strategies", default="rerank,greedy", help="rows of --eval, comma-separated")
    p.add_argument("--output", default=None, help="folder for results.json/descriptions.csv of --eval")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if not args.skip_speed:
        speed(args)
    if args.eval:
        evaluation(args)


if __name__ == "__main__":
    main()
