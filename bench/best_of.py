"""The served best-of-N choice, side by side: the likelihood summed while generating against a scoring pass.

    python bench/best_of.py [--models-dir models] [--bundles sufi aphorism] [--batch 8] [--rounds 5]

For each bundle, the same requests (its shipped decoding, seeds 0..batch-1, one call per round as a generation
worker makes it) through charlm.candidates.generate_best twice, alternating, best of --rounds:
  (a) as served: each candidate's likelihood (the tie-break after the checks) summed as its characters are
      sampled (charlm.generate.Result.nats);
  (b) the baseline, round 3 as first shipped: the likelihood from a second pass of the model over every
      candidate's text (charlm.score.text_nats), forced here by dropping (a)'s sums.
It checks that both serve the same texts, and prints wall time per request and the ratio. CPU-bound: run it
on a calm machine; the ratio is the figure to read.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from charlm import Request, load_bundle  # noqa: E402
from charlm import candidates  # noqa: E402
from charlm.generate import generate  # noqa: E402


def _scoring_pass(*args, **kwargs):
    """charlm.generate.generate with every result's summed likelihood dropped: the candidates are scored again."""
    return [replace(r, nats=None) for r in generate(*args, **kwargs)]


def timed(bundle, requests, baseline: bool) -> tuple[float, list[str]]:
    candidates.generate = _scoring_pass if baseline else generate
    try:
        t = time.perf_counter()
        texts = [r.text for r in bundle.generate(requests)]
        return time.perf_counter() - t, texts
    finally:
        candidates.generate = generate


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--models-dir", default="models")
    p.add_argument("--bundles", nargs="+", default=["sufi", "aphorism"])
    p.add_argument("--batch", type=int, default=8, help="requests per call")
    p.add_argument("--rounds", type=int, default=5, help="calls per method; the best is kept")
    a = p.parse_args(argv)
    print("| bundle | decoding | (a) summed while generating, ms / request | (b) scoring pass, ms / request | (a) / (b) |")
    print("|---|---|---:|---:|---:|")
    for name in a.bundles:
        path = Path(a.models_dir) / name
        if not (path / "manifest.json").is_file():
            print(f"error: {path}: no bundle there (--models-dir, --bundles)", file=sys.stderr)
            return 2
        b = load_bundle(path)
        s = b.defaults
        reqs = [Request(seed, "", s) for seed in range(a.batch)]
        best = {False: float("inf"), True: float("inf")}
        texts = {}
        for _ in range(a.rounds):
            for baseline in (False, True):
                dt, texts[baseline] = timed(b, reqs, baseline)
                best[baseline] = min(best[baseline], dt)
        if texts[False] != texts[True]:
            print(f"error: {name}: the two methods served different texts", file=sys.stderr)
            return 1
        ms = {k: v * 1000 / a.batch for k, v in best.items()}
        print(f"| {name} | {s.min_length}-{s.max_length} chars, best of {s.candidates}, t {s.temperature} | "
              f"{ms[False]:.1f} | {ms[True]:.1f} | {ms[False] / ms[True]:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
