"""Tests of distilmos.standins.bvcc_somos: the synthetic BVCC/SOMOS corpora and their record."""

import collections
import json
import re

import numpy as np
import pytest
import soundfile as sf

from distilmos import standins
from distilmos.standins import make_corpus

SIZES = dict(bvcc_systems=4, bvcc_utts_per_system=6, somos_systems=4, somos_utts_per_system=6)
BVCC_NAME = re.compile(r"^(sys[0-9a-f]{5})-utt[0-9a-f]{7}\.wav$")
SOMOS_NAME = re.compile(r"^(novel|news|wiki|conv)_\d{4}_\d{4}_(\d{3})\.wav$")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A small corpus (seed 0) and the record make_corpus returned."""
    out = tmp_path_factory.mktemp("corpus")
    return out, make_corpus(out, seed=0, **SIZES)


def _read_list(path, header=None):
    """``{wav: score}`` of a mos list, checking the header line if one is expected."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if header is not None:
        assert lines[0] == header
        lines = lines[1:]
    rows = [line.split(",") for line in lines]
    assert all(len(row) == 2 for row in rows)
    return {wav: float(score) for wav, score in rows}


def _bvcc_lists(out):
    sets = out / "bvcc" / "DATA" / "sets"
    return {split: _read_list(sets / f"{split}_mos_list.txt") for split in ("train", "val", "test")}


def _somos_lists(out):
    lists = out / "somos" / "training_files" / "split1" / "clean"
    return {
        split: _read_list(lists / f"{split}_mos_list.txt", header="utteranceId,mean")
        for split in ("train", "valid", "test")
    }


def _all_files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_record_json_equals_returned_record(corpus):
    out, record = corpus
    assert json.loads((out / "record.json").read_text(encoding="utf-8")) == record
    assert record["seed"] == 0
    assert set(record["bvcc"]) == {"train", "val", "test"}
    assert set(record["somos"]) == {"train", "valid", "test"}


def test_bvcc_lists_match_files_and_record(corpus):
    out, record = corpus
    lists = _bvcc_lists(out)
    wav_dir = out / "bvcc" / "DATA" / "wav"
    listed = set()
    for split, scores in lists.items():
        assert scores == {u["wav"]: u["score"] for u in record["bvcc"][split]}
        for wav in scores:
            assert BVCC_NAME.match(wav), wav
            info = sf.info(str(wav_dir / wav))
            assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        listed |= set(scores)
    assert listed == {p.name for p in wav_dir.iterdir()}
    assert sum(len(s) for s in lists.values()) == SIZES["bvcc_systems"] * SIZES["bvcc_utts_per_system"]


def test_bvcc_has_exactly_one_unseen_system(corpus):
    out, record = corpus
    systems = {split: {BVCC_NAME.match(w).group(1) for w in scores} for split, scores in _bvcc_lists(out).items()}
    unseen = (systems["val"] | systems["test"]) - systems["train"]
    assert len(unseen) == 1
    assert len(systems["train"]) == SIZES["bvcc_systems"] - 1
    assert [name for name, s in record["systems"].items() if s["unseen"]] == list(unseen)


@pytest.mark.parametrize("split, listener_file", [("train", "TRAINSET"), ("val", "DEVSET")])
def test_listener_ratings_average_to_the_listed_score(corpus, split, listener_file):
    out, record = corpus
    ratings = collections.defaultdict(list)
    for line in (out / "bvcc" / "DATA" / "sets" / listener_file).read_text(encoding="utf-8").splitlines():
        system, wav, rating, _ignore, listener = line.split(",")
        assert wav.startswith(system + "-")
        assert re.search(r"Listener\d+$", listener)
        ratings[wav].append(int(rating))
    scores = _bvcc_lists(out)[split]
    assert set(ratings) == set(scores)
    for wav, values in ratings.items():
        assert len(values) == 8 and all(1 <= v <= 5 for v in values)
        assert np.mean(values) == pytest.approx(scores[wav], abs=1e-9)
    assert {u["wav"]: u["ratings"] for u in record["bvcc"][split]} == dict(ratings)


def test_exactly_one_silent_bvcc_file_and_it_is_in_train(corpus):
    out, record = corpus
    wav_dir = out / "bvcc" / "DATA" / "wav"
    silent = [p.name for p in wav_dir.iterdir() if not np.any(sf.read(str(p), dtype="int16")[0])]
    assert len(silent) == 1
    assert silent[0] in _bvcc_lists(out)["train"]
    flagged = [u["wav"] for split in record["bvcc"].values() for u in split if u["silent"]]
    assert flagged == silent
    assert sf.info(str(wav_dir / silent[0])).duration >= 1.0


def test_other_files_are_finite_and_not_silent(corpus):
    out, record = corpus
    silent = {u["wav"] for split in record["bvcc"].values() for u in split if u["silent"]}
    paths = list((out / "bvcc" / "DATA" / "wav").iterdir()) + list((out / "somos" / "audios").iterdir())
    for path in paths:
        if path.name in silent:
            continue
        audio, _ = sf.read(str(path))
        assert np.all(np.isfinite(audio)), path.name
        assert np.abs(audio).max() > 0.05, path.name
        assert 1.0 <= len(audio) / sf.info(str(path)).samplerate <= 4.1, path.name


def test_somos_lists_match_files_and_record(corpus):
    out, record = corpus
    audio_dir = out / "somos" / "audios"
    listed = set()
    for split, scores in _somos_lists(out).items():
        entries = {u["wav"]: u for u in record["somos"][split]}
        assert scores == {wav: u["score"] for wav, u in entries.items()}
        for wav, entry in entries.items():
            match = SOMOS_NAME.match(wav)
            assert match, wav
            assert entry["system"] == match.group(2) == wav[: -len(".wav")].rsplit("_", 1)[-1]
            info = sf.info(str(audio_dir / wav))
            assert (info.samplerate, info.channels) == (entry["sample_rate"], entry["channels"])
            assert info.samplerate == 22050
        listed |= set(scores)
    assert listed == {p.name for p in audio_dir.iterdir()}
    channels = [u["channels"] for split in record["somos"].values() for u in split]
    assert 2 in channels and 1 in channels


def test_scores_are_valid_and_spread(corpus):
    out, record = corpus
    for corpus_name in ("bvcc", "somos"):
        scores = [u["score"] for split in record[corpus_name].values() for u in split]
        assert all(1.0 <= s <= 5.0 for s in scores)
        assert max(scores) - min(scores) > 1.5, corpus_name
    qualities = [s["quality"] for s in record["systems"].values()]
    assert all(1.3 <= q <= 4.7 for q in qualities)
    assert max(qualities) - min(qualities) > 1.5


def test_same_seed_is_byte_identical_and_other_seed_differs(corpus, tmp_path):
    out, _ = corpus
    size_args = [f"--{k}={v}" for k, v in SIZES.items()]
    assert standins.main(["bvcc_somos", "--out_dir", str(tmp_path / "same"), "--seed", "0"] + size_args) == 0
    reference = _all_files(out)
    assert _all_files(tmp_path / "same") == reference

    make_corpus(tmp_path / "other", seed=1, **SIZES)
    other = _all_files(tmp_path / "other")
    assert _bvcc_lists(tmp_path / "other") != _bvcc_lists(out)
    wavs = [p for p in reference if p.suffix == ".wav"]
    assert not {p for p in wavs if p.parts[0] == "bvcc"} & set(other), "bvcc file names come from the seed"
    assert sorted(reference[p] for p in wavs) != sorted(other[p] for p in other if p.suffix == ".wav")


def test_rerun_replaces_own_output_but_refuses_foreign_folders(tmp_path):
    small = dict(bvcc_systems=2, bvcc_utts_per_system=3, somos_systems=1, somos_utts_per_system=3)
    make_corpus(tmp_path / "mine", seed=0, **SIZES)
    record = make_corpus(tmp_path / "mine", seed=0, **small)
    assert len(list((tmp_path / "mine" / "bvcc" / "DATA" / "wav").iterdir())) == 6
    assert sum(len(s) for s in record["somos"].values()) == 3

    foreign = tmp_path / "foreign" / "bvcc"
    foreign.mkdir(parents=True)
    (foreign / "keep.txt").write_text("real data", encoding="utf-8")
    with pytest.raises(FileExistsError):
        make_corpus(tmp_path / "foreign", seed=0, **small)
    assert (foreign / "keep.txt").read_text(encoding="utf-8") == "real data"


def test_command_refuses_bad_input_with_one_message(tmp_path, capsys):
    foreign = tmp_path / "foreign" / "somos"
    foreign.mkdir(parents=True)
    (foreign / "keep.txt").write_text("real data", encoding="utf-8")
    assert standins.main(["bvcc_somos", "--out_dir", str(tmp_path / "foreign")]) == 2
    assert "somos already holds files" in capsys.readouterr().err
    assert not (tmp_path / "foreign" / "bvcc").exists(), "nothing written before the refusal"
    assert standins.main(["bvcc_somos", "--out_dir", str(tmp_path / "small"), "--bvcc_systems", "1"]) == 2
    assert "need at least 2 BVCC systems" in capsys.readouterr().err
    assert standins.main(["mosbench", "--out_dir", str(tmp_path / "mb"), "--corpora", "nisqa nonsense"]) == 2
    assert "unknown corpora nonsense" in capsys.readouterr().err
    assert not (tmp_path / "mb").exists()
