"""`python -m training.recipe`: the plan, its first step on tiny corpora (tiny settings through --set), resuming."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from charlm import load_bundle
from tests.conftest import synthetic_text
from training import recipe

ROOT = Path(__file__).resolve().parents[2]
# Each test runs training in child processes (TensorFlow import, tracing, export): a few seconds each on a calm
# machine, minutes on a loaded one; the project's default of 300 s per test is too tight for that.
pytestmark = pytest.mark.timeout(1800)
TINY = ["--set", "units=12", "--set", "embedding=6", "--set", "window=24", "--set", "stride=16", "--set", "batch_size=8",
        "--set", "epochs=1", "--set", "sample_every=0"]


def run(args, cwd, check=True):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-m", "training.recipe", *args], cwd=cwd, env=env, capture_output=True,
                       text=True, timeout=900)
    if check:
        assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    return p


@pytest.fixture
def corpora(tmp_path):
    """The five parable corpora as `python -m training.corpora fetch` leaves them, tiny."""
    (tmp_path / "data").mkdir()
    for i, culture in enumerate(recipe.CULTURES):
        (tmp_path / "data" / f"{culture}.txt").write_text(synthetic_text(30, seed=10 + i), encoding="utf-8")
    return tmp_path


def test_the_table_is_the_shipped_schedule():
    base256 = recipe.by_name("base256").args
    assert base256["corpus"] == [f"data/{c}.txt" for c in ("armenian", "hasidic", "indian", "jewish", "sufi")]
    assert {k: base256[k] for k in ("window", "stride", "batch_size", "dropout", "lr", "epochs")} == \
        dict(window=128, stride=128, batch_size=64, dropout=0.1, lr=3e-3, epochs=23)
    base384 = recipe.by_name("base384")
    assert base384.args["init_from"] == "wide384" and base384.install == "base" and base384.args["culture"] == "base"
    assert "data/fortunes.txt" in base384.args["corpus"]
    # round 3: TinyStories-ru alone, then with every written corpus, then each culture's written corpus
    assert recipe.by_name("simple").args["corpus"] == ["data/tinystories.txt"]
    assert recipe.by_name("simple").args["init_from"] == "base384"
    genre = recipe.by_name("genre").args
    assert genre["init_from"] == "simple" and genre["corpus"][0] == "data/tinystories.txt"
    assert sorted(genre["corpus"][1:]) == sorted(f"corpora/{c}.written.txt" for c in recipe.SERVED)
    fine = [s for s in recipe.STEPS if s.install == "models"]
    assert [s.name for s in fine] == ["armenian", "hasidic", "indian", "jewish", "sufi", "aphorism"]
    assert all(s.args["init_from"] == ("genre" if s.name == "aphorism" else "mix")
               and s.args["corpus"] == [f"corpora/{s.name}.written.txt"] for s in fine)
    mix = recipe.by_name("mix").args  # round 4: the written corpora four times over, beside TinyStories-ru
    assert mix["init_from"] == "genre" and mix["corpus"][0] == "data/tinystories.txt"
    assert sorted(mix["corpus"][1:]) == sorted(f"corpora/{c}.written.txt" for c in recipe.SERVED for _ in range(4))
    # the real corpora and fortunes-ru's sayings are in none of round 3's steps
    for s in recipe.STEPS[recipe.STEPS.index(recipe.by_name("simple")):]:
        assert not any(c.startswith("data/") and c != "data/tinystories.txt" for c in s.args["corpus"]), s.name
    names = [s.name for s in recipe.STEPS]
    for s in recipe.STEPS:  # every step refers only to steps before it
        for ref in (s.args.get("init_from"), s.args.get("bundle"), s.args.get("charset_of")):
            assert ref is None or names.index(ref) < names.index(s.name), (s.name, ref)


def test_dry_run_prints_the_plan_and_commands_and_runs_nothing(corpora):
    out = run(["--dry-run"], corpora).stdout
    assert "16 of 16 steps" in out
    assert "python -m training.widen runs/sufi256/bundle --units 384" in out
    assert "--init-from runs/base384/bundle" in out and "--recipe-step aphorism" in out and "--alias aph" in out
    assert "python -m training.corpora tinystories --from data/tinystories-ru -o data/tinystories.txt" in out
    assert "--init-from runs/genre/bundle" in out and "--init-from runs/mix/bundle" in out
    assert not (corpora / "runs").exists()


def test_the_first_step_runs_is_stamped_and_is_not_rerun(corpora):
    r = run(["--only", "base256", *TINY], corpora)
    assert "base256          to do" in r.stdout and "[1/1] base256: done in" in r.stdout
    bundle = load_bundle(corpora / "runs" / "base256" / "bundle")
    assert bundle.manifest["recipe"]["step"] == "base256"
    cfg = bundle.manifest["training"]["config"]
    assert cfg["units"] == 12 and cfg["stride"] == 16 and cfg["dropout"] == 0.1  # the override, and the table's own
    assert len(bundle.manifest["corpus"]["files"]) == 5
    assert not (corpora / "models").exists()  # the pretraining bundle is not served
    again = run(["--only", "base256", *TINY], corpora).stdout
    assert "base256          done" in again and "done already" in again


def test_a_step_whose_input_is_missing_says_which_step_to_run(corpora):
    p = run(["--only", "wide384"], corpora, check=False)
    assert p.returncode == 2
    (line,) = [l for l in p.stderr.splitlines() if l.strip()]
    assert "sufi256" in line and "--only sufi256" in line


def test_unknown_step_and_bad_override_get_one_line(corpora):
    p = run(["--only", "kurdish"], corpora, check=False)
    assert p.returncode == 2 and "no step 'kurdish'" in p.stderr and "base256" in p.stderr
    p = run(["--set", "colour=blue"], corpora, check=False)
    assert p.returncode == 2 and "--set 'colour=blue'" in p.stderr and "epochs" in p.stderr
