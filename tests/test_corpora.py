"""The corpus readers (distilmos/corpora) against corpora generated in each distributed layout
(distilmos.standins.mosbench): every split, id, system and score as the generator wrote them; a
missing score file or audio file is an error naming it; a finished preparation is stamped and kept."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import REPO

from distilmos import corpora
from distilmos.corpora.common import holdout
from distilmos.data.datalist import DataListError, read_datalist
from distilmos.standins import make_mosbench

# corpus -> one score file under its generated folder
SCORE_FILES = {
    "singmos": "DATA/sets/train_mos_list.txt",
    "nisqa": "NISQA_TEST_FOR/NISQA_TEST_FOR_file.csv",
    "tmhint_qi": "raw_data.csv",
    "tencent": "withReverberationTrainDevMOS.csv",
    "pstn": "pstn_train.csv",
    "vmc23": "answers/track2_answer.txt",
    "bc19": "ood/DATA/sets/val_mos_list.txt",
    "vcc2018": "vcc2018_listening_test_scores/vcc2018_evaluation_mos.txt",
    "bc23": "answers/answer.csv",
    "svcc23": "answers/listener_wise_answer.csv",
    "tcd_voip": "answers/tcd-voip_answer.csv",
    "urgent2024_mos": "metadata.csv",
    "ttsds2": "subjective_results.csv",
}
ROOTS = {"bc19": "ood"}  # the corpus root under its generated folder, where it is not the folder itself
TRAINING_ONLY = {"urgent2024_mos"}  # no test set ships: never evaluated by the benchmark


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("mosbench_corpora")
    return str(root), make_mosbench(str(root), seed=0, utts=3)


def _root(base, name):
    return os.path.join(base, name, ROOTS.get(name, ""))


def _expected_splits(name, record):
    """``{split: {sample_id: entry}}`` the preparation must write, from what the generator wrote."""
    out = {}
    for key, entries in record[name].items():
        pool, _, _ = key.partition(":")
        if pool == "train+val":  # drawn by the preparation: a seeded holdout of each list
            held = holdout([e["sample_id"] for e in entries])
            for e in entries:
                out.setdefault("val" if e["sample_id"] in held else "train", {})[e["sample_id"]] = e
        else:
            out.setdefault(pool, {}).update({e["sample_id"]: e for e in entries})
    return out


@pytest.mark.parametrize("name", list(SCORE_FILES))
def test_prep_writes_what_the_generator_wrote(generated, tmp_path, name):
    base, record = generated
    counts = corpora.prepare(name, _root(base, name), str(tmp_path), progress=False)
    expected = _expected_splits(name, record)
    assert set(counts) == set(expected)
    assert set(counts) <= set(corpora.CORPORA[name].splits)
    for split, entries in expected.items():
        utts = read_datalist(str(tmp_path / f"{split}.csv"))
        assert counts[split] == len(utts) == len(entries), split
        assert {u.sample_id for u in utts} == set(entries)
        for utt in utts:
            entry = entries[utt.sample_id]
            assert utt.system_id == entry["system"], utt.sample_id
            assert utt.score == pytest.approx(entry["score"], abs=1e-9)
            assert os.path.samefile(utt.wav_path, os.path.join(base, name, entry["wav"]))
            assert os.path.isabs(utt.wav_path)


def test_holdouts_are_a_tenth_and_disjoint(generated, tmp_path):
    base, record = generated
    corpora.prepare("tencent", _root(base, "tencent"), str(tmp_path), progress=False)
    train = {u.sample_id for u in read_datalist(str(tmp_path / "train.csv"))}
    val = {u.sample_id for u in read_datalist(str(tmp_path / "val.csv"))}
    assert not train & val
    assert len(val) == 2  # one of each list's 9 files (at least one when a list has two or more)
    assert holdout(list("abcdefghijklmnopqrst")) == holdout(list("tsrqponmlkjihgfedcba"))  # order-free


@pytest.mark.parametrize("name", list(SCORE_FILES))
def test_missing_score_file_is_named(generated, tmp_path, name):
    base, _ = generated
    copy = tmp_path / name
    shutil.copytree(os.path.join(base, name), copy)
    score_file = copy / SCORE_FILES[name]
    score_file.unlink()
    with pytest.raises(DataListError, match=str(score_file)):
        corpora.prepare(name, _root(str(tmp_path), name), str(tmp_path / "out"), progress=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", list(SCORE_FILES))
def test_missing_wav_is_named(generated, tmp_path, name):
    base, record = generated
    copy = tmp_path / name
    shutil.copytree(os.path.join(base, name), copy)
    entry = next(iter(record[name].values()))[0]
    (copy / entry["wav"]).unlink()
    with pytest.raises(DataListError, match="no such audio file") as info:
        corpora.prepare(name, _root(str(tmp_path), name), str(tmp_path / "out"), progress=False)
    assert os.path.basename(entry["wav"]) in str(info.value)
    assert not (tmp_path / "out").exists()  # nothing written when any split is bad


def test_sheet_layouts_are_read_too(generated, tmp_path):
    """BC23 and SVCC23 audio as the archives unpack, SVCC23's mean answers instead of the listener-wise
    ones, TCD-VoIP's audio under SHEET's wav/: the same lists."""
    base, record = generated
    for name, (old, new) in {
        "bc23": ("wavs", "VoiceMOS2023Track1"),
        "svcc23": ("wavs", "VoiceMOS_2023_track2"),
        "tcd_voip": ("Test Set", "wav"),
    }.items():
        copy = tmp_path / name
        shutil.copytree(os.path.join(base, name), copy)
        os.rename(copy / old, copy / new)
        if name == "svcc23":
            (copy / "answers" / "listener_wise_answer.csv").unlink()
            (copy / "answers" / "answer.csv").write_text(
                "".join(f"{e['sample_id']},{e['score']!r}\n" for e in record[name]["test"])
            )
        counts = corpora.prepare(name, str(copy), str(tmp_path / f"out_{name}"), progress=False)
        for split, entries in record[name].items():
            utts = read_datalist(str(tmp_path / f"out_{name}" / f"{split}.csv"))
            assert counts[split] == len(entries)
            assert {u.sample_id: (u.system_id, u.score) for u in utts} == {
                e["sample_id"]: (e["system"], pytest.approx(e["score"], abs=1e-9)) for e in entries
            }
            assert all(f"/{new}/" in u.wav_path for u in utts)


def test_missing_score_file_says_how_to_get_it(tmp_path):
    """URGENT 2024 MOS and TTSDS2 ship as Hugging Face datasets: the error says what writes the files."""
    for name, how in {"urgent2024_mos": "data_download.py", "ttsds2": "ttsds2.zip"}.items():
        with pytest.raises(DataListError, match=how):
            corpora.prepare(name, str(tmp_path), str(tmp_path / "out"), progress=False)


def test_training_set_is_listed_not_benchmarked(generated, tmp_path):
    """A corpus with no test set (URGENT 2024 MOS) is listed as such; the benchmark skips it with that reason
    (nothing of it to score, so nothing prepared) and goes on with the others."""
    base, _ = generated
    assert "(no test set)" in [line for line in corpora.describe().splitlines() if line.startswith("urgent2024_mos")][0]
    roots = tmp_path / "roots.yaml"
    roots.write_text(f"urgent2024_mos: {_root(base, 'urgent2024_mos')}\nttsds2: {_root(base, 'ttsds2')}\n")
    argv = ["--roots", str(roots), "--out_dir", str(tmp_path / "data"), "--corpora", "urgent2024_mos", "ttsds2"]
    assert corpora.main(argv) == 0  # distilmos-prep --roots
    with open(tmp_path / "data" / "sets.json", encoding="utf-8") as handle:
        result = json.load(handle)
    assert [s["name"] for s in result["sets"]] == ["ttsds2/test"]
    assert {"corpus": "urgent2024_mos", "reason": "a training set: it ships no test split"} in result["skipped"]
    assert not (tmp_path / "data" / "urgent2024_mos").exists()


def test_unrecognised_root_names_what_is_missing(tmp_path):
    for name in SCORE_FILES:
        with pytest.raises(DataListError, match=str(tmp_path)):
            corpora.prepare(name, str(tmp_path), str(tmp_path / "out"), progress=False)


def test_prepared_folder_is_stamped_and_skipped(generated, tmp_path):
    base, _ = generated
    out = str(tmp_path / "out")
    first = corpora.prepare("vmc23", _root(base, "vmc23"), out, progress=False)
    assert all(isinstance(n, int) for n in first.values())
    assert corpora.prepare("vmc23", _root(base, "vmc23"), out, progress=False) == {s: None for s in first}
    os.remove(os.path.join(out, "track2.csv"))  # a list gone: prepared again
    assert corpora.prepare("vmc23", _root(base, "vmc23"), out, progress=False) == first


def test_data_prep_script_per_corpus(generated, tmp_path):
    base, _ = generated
    script = os.path.join(REPO, "egs", "nisqa", "local", "data_prep.py")
    ok = subprocess.run(
        [sys.executable, script, "--nisqa_root", _root(base, "nisqa"), "--out_dir", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    assert "test_p501.csv: 9 utterances" in ok.stdout
    bad = subprocess.run(
        [sys.executable, script, "--nisqa_root", str(tmp_path / "nowhere"), "--out_dir", str(tmp_path / "o")],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "nowhere: no such folder" in bad.stderr
    listing = subprocess.run([sys.executable, "-m", "distilmos.corpora", "--list"], capture_output=True, text=True)
    assert all(name in listing.stdout for name in corpora.CORPORA)


def test_registry_names():
    assert corpora.corpus("TMHINT-QI").name == "tmhint_qi"
    with pytest.raises(DataListError, match="unknown corpus"):
        corpora.corpus("nope")
    for spec in corpora.CORPORA.values():
        assert bool(spec.test_splits) != (spec.name in TRAINING_ONLY), spec.name
        assert set(spec.test_splits) <= set(spec.splits)
        assert os.path.isfile(os.path.join(REPO, "egs", spec.name, "local", "data_prep.py"))


def test_vcc2018_natural_samples_are_systems_of_their_own(generated, tmp_path):
    """The *_NAT.wav samples: natural source and target speech, each its own system (by the speakers' role in
    the file name), never pooled into a conversion system; every row says its task."""
    from distilmos.corpora.vcc2018 import natural_system, task_of

    base, _ = generated
    corpora.prepare("vcc2018", _root(base, "vcc2018"), str(tmp_path), progress=False)
    utts = read_datalist(str(tmp_path / "test.csv"))
    by_task = {}
    for utt in utts:
        by_task.setdefault(utt.extra["task"], set()).add(utt.system_id)
    assert by_task == {"hub": {"B00", "N10", "D03"}, "spoke": {"B00", "N10", "D03"}, "natural": {"NAT_SRC", "NAT_TRG"}}
    assert all(u.sample_id.endswith("_NAT") == (u.extra["task"] == "natural") for u in utts)
    assert natural_system("S00_VCC2SM3_VCC2SM3_30004_NAT.wav") == "NAT_SRC"
    assert natural_system("VCC2TM2_30004_NAT.wav") == "NAT_TRG"
    assert natural_system("X_VCC2TM2_VCC2SF1_30004_NAT.wav") == natural_system("ref_30004_NAT.wav") == "NAT"
    assert task_of("N17_VCC2TF1_VCC2SM3_30004_SPO.wav", "HUB") == "spoke" and task_of("odd.wav", "HUB") == "hub"
