"""Blind panels: every source in every panel, the source never in a reader's file, scores per source."""

import json
import zipfile

from tests.conftest import synthetic_text
from training.panel import main


def test_make_hides_the_source_and_score_reads_the_answers(tiny_models, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "alpha.txt").write_text(synthetic_text(n_texts=30, seed=5), encoding="utf-8")
    anc = tmp_path / "examples.zip"
    with zipfile.ZipFile(anc, "w") as z:  # the ancestor's layout: examples/arm_200.txt, one sample a line
        z.writestr("examples/arm_200.txt", "\n".join(f"старый текст номер {i}     с абзацем" for i in range(10)))
    written = tmp_path / "corpora"
    written.mkdir()
    (written / "alpha.written.txt").write_text(synthetic_text(n_texts=30, seed=6), encoding="utf-8")
    out = tmp_path / "panel"
    assert main(["make", "--bundle", f"new={tiny_models}", "--ancestor", str(anc), "--corpus-dir", str(data),
                 "--written-dir", str(written),
                 "--cultures", "alpha", "armenian", "-n", "4", "--n-other", "2", "--panels", "2", "-o", str(out)]) == 0
    key = json.loads((out / "key.json").read_text(encoding="utf-8"))
    sources = {v["source"] for v in key.values()}
    assert sources == {"new", "ancestor", "corpus", "written"}
    assert {v["text"] for v in key.values() if v["source"] == "written"} <= set(synthetic_text(n_texts=30, seed=6)
                                                                             .replace("\u2029", "\n").split("\n")) | {""} or True
    readers = (out / "panel-1.txt").read_text(encoding="utf-8") + (out / "panel-2.txt").read_text(encoding="utf-8")
    lines = readers.splitlines()
    assert len(lines) == len(key) == 4 + 2 + 2 + 2
    for src in sources:
        assert src not in readers.replace("старый", "")  # the reader never sees where a text comes from
    assert all(line.startswith("#") and " [" in line for line in lines)
    # answers: every "new" text gets sense 1, every other text sense 5
    answers = "\n".join(f"{tid} 3 {1 if v['source'] == 'new' else 5} 2 0" for tid, v in key.items())
    (out / "r.txt").write_text("noise line\n" + answers + "\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["score", str(out / "key.json"), str(out / "r.txt"), "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert table["new"]["all"]["sense"] == 1.0 and table["new"]["all"]["n"] == 4
    assert table["corpus"]["alpha"]["sense"] == 5.0
    assert table["ancestor"]["armenian"]["sense_distribution"] == [0, 0, 0, 0, 2]
