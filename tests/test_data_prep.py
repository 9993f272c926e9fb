import os
import shutil
import subprocess
import sys

import pytest
from conftest import REPO, load_script

from distilmos.datalist import DataListError, read_datalist


def _by_id(csv_path):
    return {u.sample_id: u for u in read_datalist(csv_path)}


@pytest.mark.parametrize(
    "corpus,splits",
    [
        ("bvcc", {"train": "train", "val": "val", "test": "test"}),
        ("somos", {"train": "train", "val": "valid", "test": "test"}),
    ],
)
def test_prep_matches_generator_record(demo_corpus, demo_data, corpus, splits):
    root, record = demo_corpus
    for out_split, rec_split in splits.items():
        utts = _by_id(os.path.join(demo_data[corpus], f"{out_split}.csv"))
        expected = record[corpus][rec_split]
        assert len(utts) == len(expected)
        for entry in expected:
            utt = utts[os.path.splitext(entry["wav"])[0]]
            assert utt.system_id == entry["system"]
            assert utt.score == pytest.approx(entry["score"], abs=1e-9)
            assert os.path.samefile(
                utt.wav_path, os.path.join(root, corpus, "DATA/wav" if corpus == "bvcc" else "audios", entry["wav"])
            )


def test_bvcc_keeps_rating_counts(demo_corpus, demo_data):
    _, record = demo_corpus
    utts = _by_id(os.path.join(demo_data["bvcc"], "train.csv"))
    for entry in record["bvcc"]["train"]:
        assert utts[os.path.splitext(entry["wav"])[0]].extra["n_ratings"] == str(len(entry["ratings"]))


def test_bvcc_prep_reports_all_bad_rows_and_writes_nothing(demo_corpus, tmp_path):
    root, _ = demo_corpus
    bvcc = tmp_path / "bvcc"
    shutil.copytree(os.path.join(root, "bvcc"), bvcc)
    sets = bvcc / "DATA" / "sets"
    lines = (sets / "train_mos_list.txt").read_text().splitlines()
    first = lines[0].split(",")[0]
    lines += ["sysdead-uttmissing.wav,3.0", f"{first},2.0", lines[1].split(",")[0] + ",nan"]
    lines[2] = lines[2].split(",")[0] + ",abc"
    (sets / "train_mos_list.txt").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(REPO, "egs/bvcc/local/data_prep.py"),
            "--bvcc_root",
            str(bvcc),
            "--out_dir",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    err = result.stderr
    assert "4 bad row(s)" in err
    assert "sysdead-uttmissing.wav" in err and "no such audio file" in err
    assert "duplicate sample_id" in err and "'nan'" in err and "'abc'" in err
    assert f"train_mos_list.txt:{len(lines) - 2}" in err  # errors point at list lines
    assert not out.exists()  # nothing written when any split is bad


def test_generic_list_prep(demo_corpus, tmp_path):
    root, record = demo_corpus
    wav_dir = os.path.join(root, "bvcc", "DATA", "wav")
    entries = record["bvcc"]["test"]
    listing = tmp_path / "scores.txt"
    listing.write_text("wav,mos\n" + "".join(f"{e['wav']},{e['score']}\n" for e in entries))
    from distilmos import prep_list as prep

    assert (
        prep.main(
            ["--list", str(listing), "--wav_dir", wav_dir, "--out", str(tmp_path / "t.csv"), "--system_delim", "-"]
        )
        == 0
    )
    utts = _by_id(str(tmp_path / "t.csv"))
    assert {u.system_id for u in utts.values()} == {e["system"] for e in entries}
    # whitespace-separated, no header, explicit system column
    listing.write_text("".join(f"{e['wav']} {e['score']} SYS{i % 2}\n" for i, e in enumerate(entries)))
    assert prep.main(["--list", str(listing), "--wav_dir", wav_dir, "--out", str(tmp_path / "u.csv")]) == 0
    assert {u.system_id for u in read_datalist(str(tmp_path / "u.csv"))} == {"SYS0", "SYS1"}


def test_missing_corpus_root_is_clear(tmp_path):
    prep = load_script("egs/bvcc/local/data_prep.py", "bvcc_prep2")
    with pytest.raises(DataListError, match="DATA/"):
        prep.prepare(str(tmp_path), str(tmp_path / "out"))
