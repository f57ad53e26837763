"""Same bundle + seed + settings = same text in any process; the serving side never loads TensorFlow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from charlm import Request, Settings, load_bundle
from charlm.sampling import choose, probabilities
from tests.conftest import make_bundle

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("tensorflow", "keras", "tf_keras", "training")

# Runs in a fresh interpreter: generates a small batch (prefixes, greedy, top-k, top-p, a long one)
# and reports the texts, the charset a corpus gives, and whether anything heavy got imported.
GENERATE = """
import json, sys
from charlm import Charset, Request, Settings, load_bundle
bundle = load_bundle(sys.argv[1])
s = Settings(temperature=0.9, min_length=20, max_length=80)
reqs = [Request(1, "", s), Request(2, "Мудрец", s), Request(3, "", s.with_(temperature=0.0)),
        Request(4, "вода ", s.with_(top_k=5)), Request(5, "", s.with_(top_p=0.8, temperature=1.4)),
        Request(6, "", Settings(max_length=300))]
texts = [r.text for r in bundle.generate(reqs)]
alone = bundle.generate([reqs[1]])[0].text
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {forbidden})
chars = "".join(Charset.from_text("путник спросил мудреца: где вода?").chars)
# 64 rows at BLAS-sized shapes, finishing at different steps: one batch of 64, then batches of 1 to 43
from charlm.generate import generate
from tests.charlm.test_batch_invariance import CHARSET, random_runtime
rt = random_runtime(seed=6)
base = Settings(temperature=0.9, min_length=5, max_length=40)
many = [Request(200 + i, "", base.with_(max_length=8 + (i * 7) % 33, temperature=[0.9, 1.2, 0.0][i % 3]))
        for i in range(64)]
full = [r.text for r in generate(rt, CHARSET, many)]
pieces, at = [], 0
for size in (1, 2, 5, 13, 43):
    pieces += [r.text for r in generate(rt, CHARSET, many[at : at + size])]
    at += size
print(json.dumps({{"texts": texts, "alone": alone, "heavy": heavy, "chars": chars, "full": full, "pieces": pieces}}))
""".format(forbidden=set(FORBIDDEN))


def _run(code: str, *args: str, hashseed: str) -> dict:
    env = {**os.environ, "PYTHONHASHSEED": hashseed, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("repro"), "gamma", seed=5)


def test_same_text_in_fresh_processes_with_different_hash_seeds(bundle_dir):
    a = _run(GENERATE, str(bundle_dir), hashseed="1")
    b = _run(GENERATE, str(bundle_dir), hashseed="4242")
    assert a["texts"] == b["texts"]
    assert a["chars"] == b["chars"] == "".join(sorted(set(a["chars"])))
    assert a["alone"] == a["texts"][1]  # alone or in a batch: the same proverb
    assert a["heavy"] == b["heavy"] == []  # generation needs no TensorFlow
    assert all(a["texts"]) and len(set(a["texts"])) == len(a["texts"])
    # 64 rows finishing apart: the same texts in one batch of 64 as in batches of 1, 2, 5, 13 and 43
    assert a["full"] == a["pieces"] == b["full"] == b["pieces"]
    assert len(set(a["full"])) > 40
    # and this process (TensorFlow loaded, another hash seed) agrees too
    s = Settings(temperature=0.9, min_length=20, max_length=80)
    assert load_bundle(bundle_dir).generate([Request(2, "Мудрец", s)])[0].text == a["texts"][1]


def test_a_rows_sampling_does_not_depend_on_the_rest_of_its_batch():
    # flat rows take the no-sort path alone, the sorted one beside rows that ask for top-k/top-p/greedy
    rng = np.random.default_rng(0)
    scale = np.array([0.3, 1.0, 3.0, 8.0, 20.0, 60.0])[:, None]
    logits = (rng.standard_normal((6, 50)) * scale).astype(np.float32)  # (6, vocab)
    temp, top_k, top_p = np.full(6, 0.7), np.zeros(6, np.int64), np.ones(6)
    others = (np.array([0.0, 1.0, 0.9]), np.array([0, 5, 0]), np.array([1.0, 1.0, 0.5]))
    u = rng.random(6)
    for i in range(6):
        alone = probabilities(logits[i : i + 1], temp[i : i + 1], top_k[i : i + 1], top_p[i : i + 1])
        crowd = probabilities(np.vstack([logits[i : i + 1], logits[:3]]), *(np.r_[a[i : i + 1], b] for a, b in
                                                                           zip((temp, top_k, top_p), others)))
        np.testing.assert_array_equal(alone[0], crowd[0])
        assert choose(alone, u[i : i + 1])[0] == choose(crowd, np.r_[u[i], 0.5, 0.5, 0.5])[0]


def _modules(package: str) -> list[str]:
    """Every module of `package` except __main__ (which would run the program)."""
    import pkgutil

    return [package] + [f"{package}.{m.name}" for m in pkgutil.iter_modules([str(ROOT / package)])
                        if m.name != "__main__"]


@pytest.mark.parametrize("package", ["charlm", "bot"])
def test_importing_never_loads_tensorflow_or_keras(package):
    if not (ROOT / package / "__init__.py").is_file():
        pytest.skip(f"no {package} package")
    names = _modules(package)
    code = ("import importlib, json, sys\n"
            f"for name in {names!r}: importlib.import_module(name)\n"
            f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {set(FORBIDDEN)!r})))")
    heavy = _run(code, hashseed="0")
    assert heavy == [], f"importing {package} loaded {heavy}"
