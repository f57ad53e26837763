import json
import shutil

import h5py
import numpy as np
import pytest

from charlm import BundleError, Request, find_bundles, load_bundle
from tests.conftest import make_bundle


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("b"), "gamma", aliases=["g"], seed=3)


def copy(bundle_dir, tmp_path):
    dest = tmp_path / "gamma"
    shutil.copytree(bundle_dir, dest)
    return dest


def test_loads_and_reproduces_golden(bundle_dir):
    b = load_bundle(bundle_dir)
    assert b.name == "gamma" and b.aliases == ["g"]
    assert b.check_golden() == []
    assert len(b.manifest["golden"]) >= 3
    assert set(b.manifest["files"]) >= {"model.json", "model.weights.h5", "charset.json"}


def test_missing_file_is_named(bundle_dir, tmp_path):
    d = copy(bundle_dir, tmp_path)
    (d / "charset.json").unlink()
    with pytest.raises(BundleError) as e:
        load_bundle(d)
    assert e.value.path.endswith("charset.json") and "missing" in e.value.problem


def test_tampered_weights_are_refused(bundle_dir, tmp_path):
    d = copy(bundle_dir, tmp_path)
    with h5py.File(d / "model.weights.h5", "r+") as f:
        ds = f["layers/dense/vars/1"]
        ds[0] = ds[0] + 1.0
    with pytest.raises(BundleError) as e:
        load_bundle(d)
    assert e.value.path.endswith("model.weights.h5") and "sha256" in e.value.problem


def test_without_its_model_a_bundle_is_still_verified_file_by_file(bundle_dir, tmp_path):
    # the bot process loads bundles so (its workers read the models): a tampered file must still be refused
    b = load_bundle(bundle_dir, model=False)
    assert b.runtime is None and b.novelty is None
    assert b.manifest == load_bundle(bundle_dir).manifest and b.charset.chars == load_bundle(bundle_dir).charset.chars
    d = copy(bundle_dir, tmp_path)
    with h5py.File(d / "model.weights.h5", "r+") as f:
        ds = f["layers/dense/vars/1"]
        ds[0] = ds[0] + 1.0
    with pytest.raises(BundleError) as e:
        load_bundle(d, model=False)
    assert e.value.path.endswith("model.weights.h5") and "sha256" in e.value.problem


def _rewrite_manifest_hashes(d):
    from charlm.bundle import sha256_file

    m = json.loads((d / "manifest.json").read_text())
    m["files"] = {f: sha256_file(d / f) for f in m["files"]}
    m.pop("charset_sha256", None)
    (d / "manifest.json").write_text(json.dumps(m))


def test_charset_size_mismatch_names_both_sizes(bundle_dir, tmp_path):
    d = copy(bundle_dir, tmp_path)
    chars = json.loads((d / "charset.json").read_text())
    (d / "charset.json").write_text(json.dumps(chars[:-1], ensure_ascii=False))
    _rewrite_manifest_hashes(d)  # a consistent but wrong bundle: hashes match, sizes do not
    with pytest.raises(BundleError) as e:
        load_bundle(d)
    assert str(len(chars) - 1) in e.value.problem and str(len(chars)) in e.value.problem


def test_unknown_layer_is_refused_by_name(bundle_dir, tmp_path):
    d = copy(bundle_dir, tmp_path)
    spec = json.loads((d / "model.json").read_text())
    spec["config"]["layers"][2]["class_name"] = "Bidirectional"
    (d / "model.json").write_text(json.dumps(spec))
    _rewrite_manifest_hashes(d)
    with pytest.raises(BundleError) as e:
        load_bundle(d)
    assert "Bidirectional" in e.value.problem and e.value.path.endswith("model.json")


def test_not_hdf5_is_refused(bundle_dir, tmp_path):
    d = copy(bundle_dir, tmp_path)
    (d / "model.weights.h5").write_bytes(b"not hdf5 at all")
    _rewrite_manifest_hashes(d)
    with pytest.raises(BundleError) as e:
        load_bundle(d)
    assert "HDF5" in e.value.problem


def test_rewrite_is_atomic_and_replaces(bundle_dir, tmp_path):
    from charlm.bundle import write_bundle

    d = copy(bundle_dir, tmp_path)
    files = {f: d / f for f in json.loads((d / "manifest.json").read_text())["files"]}
    # copy sources aside: the destination folder itself is replaced
    src = tmp_path / "src"
    shutil.copytree(d, src)
    files = {f: src / f for f in files}
    write_bundle(d, files, {"name": "gamma", "title": "Новое"})
    assert load_bundle(d).title == "Новое"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp or old folders left
    assert find_bundles(tmp_path) == [d, src]


def _set_manifest(d, change):
    m = json.loads((d / "manifest.json").read_text())
    m = change(m)
    (d / "manifest.json").write_text(json.dumps(m))


@pytest.mark.parametrize("change, field", [
    (lambda m: [m], "must be a JSON object"),
    (lambda m: {**m, "files": list(m["files"])}, "files"),
    (lambda m: {**m, "aliases": None}, "aliases"),
    (lambda m: {**m, "aliases": ["ok", "Not OK!"]}, "aliases"),
    (lambda m: {**m, "title": 5}, "title"),
    (lambda m: {**m, "generation": {**m.get("generation", {}), "temperature": 99}}, "generation"),
    (lambda m: {**m, "generation": {"max_length": "abc"}}, "generation.max_length"),
    (lambda m: {**m, "generation": {"min_length": 50, "max_length": 10}}, "generation"),
    (lambda m: {**m, "generation": "hot"}, "generation"),
    (lambda m: {**m, "novelty_window": "forty"}, "novelty_window"),
    (lambda m: {**m, "generation": {"real_words": "yes"}}, "generation.real_words"),
    (lambda m: {**m, "golden": [{"seed": "one"}]}, "golden[0]"),
    (lambda m: {**m, "files": {**m["files"], "model.json": 42}}, "files.model.json"),
])
def test_every_malformed_manifest_field_is_named(bundle_dir, tmp_path, change, field):
    d = copy(bundle_dir, tmp_path)
    _set_manifest(d, change)
    with pytest.raises(BundleError) as e:  # never a raw KeyError/TypeError/AttributeError
        load_bundle(d)
    assert e.value.path.endswith("manifest.json") and field in e.value.problem, e.value.problem
    assert "\n" not in str(e.value)


def test_two_malformed_fields_are_both_named(bundle_dir, tmp_path):
    d = copy(bundle_dir, tmp_path)
    _set_manifest(d, lambda m: {**m, "aliases": None, "generation": {"temperature": 99}})
    with pytest.raises(BundleError) as e:
        load_bundle(d)
    assert "aliases" in e.value.problem and "generation" in e.value.problem


def test_a_model_json_of_another_shape_is_named(bundle_dir, tmp_path):
    d = copy(bundle_dir, tmp_path)
    spec = json.loads((d / "model.json").read_text())
    spec["config"]["layers"] = {"not": "a list"}
    (d / "model.json").write_text(json.dumps(spec))
    _rewrite_manifest_hashes(d)
    with pytest.raises(BundleError) as e:
        load_bundle(d)
    assert e.value.path.endswith("model.json")


@pytest.mark.parametrize("content", [b"garbage, not numpy", "floats", "2d"])
def test_a_garbage_novelty_index_is_named(bundle_dir, tmp_path, content):
    d = copy(bundle_dir, tmp_path)
    m = json.loads((d / "manifest.json").read_text())
    assert "novelty.npy" in m["files"]
    if content == "floats":
        np.save(d / "novelty.npy", np.array([0.5, 1.5]))
    elif content == "2d":
        np.save(d / "novelty.npy", np.zeros((3, 3), np.uint32))
    else:
        (d / "novelty.npy").write_bytes(content)
    _rewrite_manifest_hashes(d)
    with pytest.raises(BundleError) as e:
        load_bundle(d)
    assert e.value.path.endswith("novelty.npy")


def test_a_bundle_folder_without_a_manifest_is_found_and_refused(bundle_dir, tmp_path):
    d = copy(bundle_dir, tmp_path)
    (d / "manifest.json").unlink()
    (tmp_path / "notes").mkdir()  # a folder of other things is not a bundle
    (tmp_path / "notes" / "todo.txt").write_text("x")
    assert find_bundles(tmp_path) == [d]
    with pytest.raises(BundleError) as e:
        load_bundle(d)
    assert e.value.path.endswith("manifest.json") and "missing" in e.value.problem
