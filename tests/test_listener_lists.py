"""Per-listener data lists: the corpus readers write ``<split>_listeners.csv`` (one row per rating, with its
listener) beside the averaged ``<split>.csv`` when the corpus names its listeners, and none otherwise."""

import os
from collections import defaultdict

import numpy as np
import pytest

from distilmos import corpora
from distilmos.data.datalist import DataListError, listener_list_path, read_datalist, read_listener_list
from distilmos.standins import make_mosbench


def test_bvcc_listener_list_is_every_rating_with_its_listener(demo_corpus, demo_data):
    _, record = demo_corpus
    names = [entry["id"] for entry in record["bvcc_listeners"]]
    for split in ("train", "val"):
        path = os.path.join(demo_data["bvcc"], f"{split}_listeners.csv")
        assert path == listener_list_path(os.path.join(demo_data["bvcc"], f"{split}.csv"))
        with open(path, "rb") as handle:
            raw = handle.read()
        assert b"\r" not in raw and raw.splitlines()[0] == b"sample_id,system_id,wav_path,score,listener_id"
        got = defaultdict(list)
        for utt in read_listener_list(path):
            got[utt.sample_id].append((utt.extra["listener_id"], utt.score))
        averaged = {u.sample_id: u for u in read_datalist(os.path.join(demo_data["bvcc"], f"{split}.csv"))}
        assert set(got) == set(averaged)
        for entry in record["bvcc"][split]:
            sample_id = os.path.splitext(entry["wav"])[0]
            expected = sorted((names[who], float(r)) for r, who in zip(entry["ratings"], entry["listeners"]))
            assert sorted(got[sample_id]) == expected
            assert np.mean([r for _, r in got[sample_id]]) == pytest.approx(averaged[sample_id].score)
    # the generated corpus has no test listener file (TESTSET): no test listener list
    assert not os.path.exists(os.path.join(demo_data["bvcc"], "test_listeners.csv"))
    # SOMOS's lists hold averaged scores only
    assert not any(name.endswith("_listeners.csv") for name in os.listdir(demo_data["somos"]))


@pytest.fixture(scope="module")
def mosbench(tmp_path_factory):
    root = tmp_path_factory.mktemp("mosbench_listeners")
    make_mosbench(str(root), seed=0, utts=3)
    return str(root)


@pytest.mark.parametrize("name", ["svcc23", "vcc2018", "ttsds2", "bc19"])
def test_mosbench_listener_lists_average_to_the_scores(mosbench, tmp_path, name):
    root = os.path.join(mosbench, name, "ood" if name == "bc19" else "")
    out = tmp_path / name
    corpora.prepare(name, root, str(out), progress=False)
    assert corpora.corpus(name).listeners
    written = [s for s in ("train", "val", "test") if (out / f"{s}_listeners.csv").exists()]
    assert written, os.listdir(out)
    for split in written:
        ratings = defaultdict(list)
        for utt in read_listener_list(str(out / f"{split}_listeners.csv")):
            assert utt.extra["listener_id"]
            ratings[utt.sample_id].append(utt.score)
        averaged = read_datalist(str(out / f"{split}.csv"))
        assert {u.sample_id for u in averaged} == set(ratings)
        for utt in averaged:
            assert np.mean(ratings[utt.sample_id]) == pytest.approx(utt.score)
            assert len(ratings[utt.sample_id]) == int(utt.extra["n_ratings"])


@pytest.mark.parametrize("name", ["tcd_voip", "nisqa", "tmhint_qi"])
def test_corpora_without_listener_ids_write_no_listener_list(mosbench, tmp_path, name):
    corpora.prepare(name, os.path.join(mosbench, name), str(tmp_path), progress=False)
    assert not corpora.corpus(name).listeners
    assert not [f for f in os.listdir(tmp_path) if f.endswith("_listeners.csv")]


def test_a_stale_listener_list_is_removed(mosbench, tmp_path):
    (tmp_path / "test_listeners.csv").write_text("sample_id,system_id,wav_path,score,listener_id\n")
    corpora.prepare("tcd_voip", os.path.join(mosbench, "tcd_voip"), str(tmp_path), progress=False)
    assert not (tmp_path / "test_listeners.csv").exists()


def test_listener_list_without_listener_ids_is_refused(tmp_path):
    path = tmp_path / "train_listeners.csv"
    path.write_text("sample_id,system_id,wav_path,score,listener_id\na,s,a.wav,3,L1\na,s,a.wav,4,\n")
    with pytest.raises(DataListError, match=r"1 row\(s\) without a listener_id .*train_listeners.csv:3"):
        read_listener_list(str(path))


def test_listing_marks_the_corpora_with_listener_lists():
    lines = {line.split()[0]: line for line in corpora.describe().splitlines()}
    assert lines["bvcc"].endswith("[listeners]") and not lines["somos"].endswith("[listeners]")
