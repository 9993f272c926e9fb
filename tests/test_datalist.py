import csv

import numpy as np
import pytest
import soundfile as sf

from distilmos.data.datalist import DataListError, Utterance, read_datalist, write_datalist


def _wav(path):
    sf.write(str(path), np.zeros(1600, dtype="float32") + 0.01, 16000)
    return path


def _csv(path, rows, header=("sample_id", "system_id", "wav_path", "score")):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def test_relative_paths_and_extra_columns(tmp_path):
    (tmp_path / "wav").mkdir()
    _wav(tmp_path / "wav" / "a.wav")
    path = _csv(
        tmp_path / "list.csv",
        [["a", "sysA", "wav/a.wav", "3.5", "x"]],
        header=("sample_id", "system_id", "wav_path", "score", "note"),
    )
    (utt,) = read_datalist(path)
    assert utt.wav_path == str(tmp_path / "wav" / "a.wav")
    assert (utt.sample_id, utt.system_id, utt.score, utt.extra) == ("a", "sysA", 3.5, {"note": "x"})


def test_preflight_reports_every_bad_row_at_once(tmp_path):
    for name in "abcd":
        _wav(tmp_path / f"{name}.wav")
    path = _csv(
        tmp_path / "list.csv",
        [
            ["a", "s1", "a.wav", "3.0"],
            ["missing", "s1", "nowhere.wav", "2.0"],  # line 3: missing file
            ["a", "s2", "b.wav", "4.0"],  # line 4: duplicate id
            ["c", "s2", "c.wav", "nan"],  # line 5: non-finite score
            ["d", "s2", "d.wav", "abc"],  # line 6: non-numeric score
        ],
    )
    with pytest.raises(DataListError) as info:
        read_datalist(path)
    message = str(info.value)
    assert "4 bad row(s)" in message
    assert f"{path}:3" in message and "nowhere.wav" in message
    assert f"{path}:4" in message and "duplicate sample_id 'a'" in message and f"{path}:2" in message
    assert f"{path}:5" in message and "'nan'" in message
    assert f"{path}:6" in message and "'abc'" in message
    assert f"{path}:2 " not in message  # the good row is not reported


def test_header_must_have_the_contract_columns(tmp_path):
    path = _csv(tmp_path / "list.csv", [["a.wav", "3"]], header=("wav", "mos"))
    with pytest.raises(DataListError, match="sample_id"):
        read_datalist(path)


def test_write_then_read_roundtrip(tmp_path):
    wav = str(_wav(tmp_path / "a.wav"))
    utts = [Utterance("a", "s", wav, 3.125, {"n_ratings": "8"})]
    write_datalist(str(tmp_path / "out" / "l.csv"), utts)
    assert read_datalist(str(tmp_path / "out" / "l.csv")) == utts
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["l.csv"]  # no temp file left behind


def test_a_crlf_list_reads_as_the_lf_one(tmp_path):
    """Lists from Windows tools (CRLF) read exactly like the toolkit's own (LF): no ``\\r`` in a last field."""
    _wav(tmp_path / "a.wav")
    _wav(tmp_path / "b.wav")
    rows = [["a", "sysA", "a.wav", "3.5", "x"], ["b", "sysB", "b.wav", "2.0", "y"]]
    header = ("sample_id", "system_id", "wav_path", "score", "note")
    lf = _csv(tmp_path / "lf.csv", rows, header)
    crlf = tmp_path / "crlf.csv"
    crlf.write_bytes(open(lf, "rb").read().replace(b"\n", b"\r\n"))
    assert b"\r\n" in crlf.read_bytes()
    assert read_datalist(str(crlf)) == read_datalist(lf)
    assert [u.extra["note"] for u in read_datalist(str(crlf))] == ["x", "y"]


def test_the_toolkit_writes_lists_with_newline_line_ends(tmp_path):
    from distilmos.eval.results import write_results

    _wav(tmp_path / "a.wav")
    path = str(tmp_path / "out.csv")
    write_datalist(path, [Utterance("a", "sysA", str(tmp_path / "a.wav"), 3.0, {"note": "x"})])
    _, predictions = write_results(str(tmp_path), "test", {"utt_MSE": 0.0}, [("a", "sysA", 3.0, 2.5)])
    for written in (path, predictions):
        data = open(written, "rb").read()
        assert b"\r" not in data and data.endswith(b"\n") and data.count(b"\n") == 2, written


def test_every_csv_writer_of_the_tree_ends_lines_with_newline():
    """Python's csv default is CRLF, which leaves a ``\\r`` in the last field for cut/awk users."""
    import ast
    import os

    from conftest import REPO

    files = [
        os.path.relpath(os.path.join(folder, name), REPO)
        for top in ("distilmos", "upstream_tokens", "downstream", "egs")
        for folder, _, names in os.walk(os.path.join(REPO, top))
        for name in names
        if name.endswith(".py")
    ]
    assert len(files) > 100
    bad = []
    for path in files:
        with open(os.path.join(REPO, path), encoding="utf-8") as handle:
            tree = ast.parse(handle.read())
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("writer", "DictWriter")
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "csv"
            ):
                ends = [k.value for k in node.keywords if k.arg == "lineterminator"]
                if not (ends and isinstance(ends[0], ast.Constant) and ends[0].value == "\n"):
                    bad.append(f"{path}:{node.lineno}")
    assert not bad, f'csv writers without lineterminator="\\n": {bad}'
