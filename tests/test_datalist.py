import csv

import numpy as np
import pytest
import soundfile as sf

from distilmos.datalist import DataListError, Utterance, read_datalist, write_datalist


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
