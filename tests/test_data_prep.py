import os
import shutil
import subprocess
import sys

import pytest
from conftest import REPO

from distilmos import corpora
from distilmos.data.datalist import DataListError, read_datalist


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
    assert result.returncode == 2
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
    from distilmos.data import score_list as prep

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
    with pytest.raises(DataListError, match="DATA/"):
        corpora.prepare("bvcc", str(tmp_path), str(tmp_path / "out"))


# ---- BVCC: the random 8:1:1 split, placeholder test labels ---------------------------------------------------


def test_bvcc_random_811_split_is_seeded_disjoint_and_by_utterance(demo_corpus, demo_data, tmp_path):
    root, _ = demo_corpus
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        options = {"split": "random811", "split_seed": seed}
        corpora.prepare("bvcc", os.path.join(root, "bvcc"), str(tmp_path / name), options=options)
    splits = ("train", "val", "test")
    read = lambda name, split: (tmp_path / name / f"{split}.csv").read_bytes()  # noqa: E731
    assert all(read("a", s) == read("b", s) for s in splits)  # the same seed: the same bytes
    assert any(read("a", s) != read("c", s) for s in splits)
    official = {s: _by_id(os.path.join(demo_data["bvcc"], f"{s}.csv")) for s in splits}
    pool = {k: u for s in splits for k, u in official[s].items()}
    dealt = {s: _by_id(str(tmp_path / "a" / f"{s}.csv")) for s in splits}
    n = len(pool)
    assert [len(dealt[s]) for s in splits] == [n - 2 * (n // 10), n // 10, n // 10]
    assert sorted(k for s in splits for k in dealt[s]) == sorted(pool)  # disjoint, and every utterance once
    for split in splits:
        for key, utt in dealt[split].items():
            same = pool[key]
            assert (utt.system_id, utt.score, utt.wav_path) == (same.system_id, same.score, same.wav_path)
            assert key in official[utt.extra["original_split"]]
    # by utterance: the test split mixes official splits, and systems span the new splits
    assert len({u.extra["original_split"] for u in dealt["test"].values()}) > 1
    assert {u.system_id for u in dealt["test"].values()} & {u.system_id for u in dealt["train"].values()}


def test_bvcc_random_split_needs_the_test_labels(demo_corpus, tmp_path):
    root, _ = demo_corpus
    bvcc = tmp_path / "bvcc"
    shutil.copytree(os.path.join(root, "bvcc"), bvcc)
    (bvcc / "DATA" / "sets" / "test_mos_list.txt").unlink()
    with pytest.raises(DataListError, match="pools the official train, val and test lists.*no test labels"):
        corpora.prepare("bvcc", str(bvcc), str(tmp_path / "out"), options={"split": "random811"})


def test_reader_options_are_part_of_the_stamp(demo_corpus, tmp_path):
    """A folder prepared on the official split is prepared again for another split, and kept for the same."""
    root, _ = demo_corpus
    bvcc, out = os.path.join(root, "bvcc"), str(tmp_path / "out")
    random = {"split": "random811", "split_seed": 0}
    official = corpora.prepare("bvcc", bvcc, out)
    assert all(isinstance(n, int) for n in corpora.prepare("bvcc", bvcc, out, options=random).values())
    assert "original_split" in read_datalist(os.path.join(out, "test.csv"))[0].extra
    assert corpora.prepare("bvcc", bvcc, out, options=random) == {split: None for split in official}


def test_reader_options_go_with_their_corpus(demo_corpus, tmp_path, capsys):
    root, _ = demo_corpus
    out = str(tmp_path / "out")
    assert corpora.main(["somos", "--root", os.path.join(root, "somos"), "--out_dir", out, "--split", "random811"]) == 2
    assert "somos takes no option split (its options: split_dir)" in capsys.readouterr().err
    assert not os.path.exists(out)
    with pytest.raises(SystemExit):
        corpora.main(["--roots", str(tmp_path / "roots.yaml"), "--out_dir", out, "--split_seed", "1"])
    assert "--split_seed is an option of one corpus's reader" in capsys.readouterr().err


def _placeholder_copy(root, tmp_path, rating="1"):
    """The BVCC copy without test_mos_list.txt and with a TESTSET as participants got it."""
    bvcc = tmp_path / "bvcc"
    shutil.copytree(os.path.join(root, "bvcc"), bvcc)
    sets = bvcc / "DATA" / "sets"
    names = [line.split(",")[0] for line in (sets / "test_mos_list.txt").read_text().splitlines() if line]
    (sets / "test_mos_list.txt").unlink()
    lines = [f"{n.split('-')[0]},{n},{rating},0,nospeaker\n" for n in names for _ in range(2)]
    (sets / "TESTSET").write_text("".join(lines))
    return bvcc, len(names)


def test_placeholder_testset_is_refused_as_test_labels(demo_corpus, tmp_path):
    root, _ = demo_corpus
    bvcc, n_test = _placeholder_copy(root, tmp_path)
    script = os.path.join(REPO, "egs/bvcc/local/data_prep.py")
    out = tmp_path / "out"
    refused = subprocess.run(
        [sys.executable, script, "--bvcc_root", str(bvcc), "--out_dir", str(out)], capture_output=True, text=True
    )
    assert refused.returncode != 0 and not out.exists()
    err = refused.stderr
    assert f"all {2 * n_test} ratings are 1, every listener 'nospeaker'" in err and "placeholder" in err
    assert "test_mos_list.txt and TESTSET of the VoiceMOS Challenge 2022 data release" in err
    assert "--allow_constant_test" in err and "Traceback" not in err
    allowed = subprocess.run(
        [sys.executable, script, "--bvcc_root", str(bvcc), "--out_dir", str(out), "--allow_constant_test"],
        capture_output=True,
        text=True,
    )
    assert allowed.returncode == 0 and "warning:" in allowed.stderr
    assert "used as the test labels anyway" in allowed.stderr
    test = read_datalist(str(out / "test.csv"))
    assert len(test) == n_test and {u.score for u in test} == {1.0}


def test_varied_testset_is_read_without_a_warning(demo_corpus, tmp_path, capsys):
    root, _ = demo_corpus
    bvcc, n_test = _placeholder_copy(root, tmp_path)
    lines = (bvcc / "DATA" / "sets" / "TESTSET").read_text().splitlines()
    lines[0] = lines[0].replace(",1,0,", ",4,0,")
    (bvcc / "DATA" / "sets" / "TESTSET").write_text("\n".join(lines) + "\n")
    counts = corpora.prepare("bvcc", str(bvcc), str(tmp_path / "out"))
    assert counts["test"] == n_test and "placeholder" not in capsys.readouterr().err


def test_placeholder_testset_beside_the_test_list_gives_no_rating_counts(demo_corpus, tmp_path, capsys):
    root, _ = demo_corpus
    bvcc, _ = _placeholder_copy(root, tmp_path)
    shutil.copy(os.path.join(root, "bvcc", "DATA", "sets", "test_mos_list.txt"), bvcc / "DATA" / "sets")
    corpora.prepare("bvcc", str(bvcc), str(tmp_path / "out"))
    test = read_datalist(str(tmp_path / "out" / "test.csv"))
    assert "no rating counts taken from it" in capsys.readouterr().err
    assert all("n_ratings" not in u.extra for u in test) and len({u.score for u in test}) > 1
