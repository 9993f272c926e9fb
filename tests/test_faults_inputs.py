"""Fault suite, the inputs half: files a user hands in that once crashed a tool, passed unnoticed, or were
refused with the wrong message or exit status. Each case runs through the entry points a user reaches it by.
"""

import json
import os
import shutil

import numpy as np
import pytest
import soundfile as sf
from downstream_helpers import DOWNSTREAM, train_argv
from recipe_helpers import run_recipe

from distilmos.data.datalist import DataListError, read_datalist, write_datalist
from distilmos.errors import ToolkitError
from distilmos.train.runner import main as run_downstream

SHORT = 16  # samples at 16 kHz: a 1 ms clip


def _train_argv(expdir, ckpt, data_dir, *overrides):
    datarc = {"data_dir": data_dir, "num_workers": 0, "train_batch_size": 4, "eval_batch_size": 64}
    values = [f"config.downstream_expert.datarc.{k}={v}" for k, v in datarc.items()]
    values += ["config.runner.total_steps=2", "config.runner.eval_step=2", "config.runner.save_step=2", *overrides]
    return train_argv(ckpt, expdir, "distilmos", "-v", "no_token", "-f", overrides=",,".join(values))


def _wav(path, n=1600):
    sf.write(str(path), np.random.default_rng(0).normal(0, 0.1, n).astype("float32"), 16000)
    return str(path)


# ---- a clip too short for the upstream ---------------------------------------------------------------


@pytest.fixture(scope="module")
def short_data(demo_data, tmp_path_factory):
    """The generated BVCC lists, with a 1 ms clip as row 3 of train.csv: ``(data dir, clip, sample id)``."""
    data = tmp_path_factory.mktemp("short_data")
    clip = _wav(data / "short.wav", SHORT)
    utts = read_datalist(os.path.join(demo_data["bvcc"], "train.csv"))
    utts[1] = type(utts[1])(utts[1].sample_id, utts[1].system_id, clip, utts[1].score)
    write_datalist(str(data / "train.csv"), utts)
    for split in ("val", "test"):
        shutil.copy(os.path.join(demo_data["bvcc"], f"{split}.csv"), data / f"{split}.csv")
    return data, clip, utts[1].sample_id


@pytest.fixture(scope="module")
def skipped_run(short_data, tiny_ckpts, tmp_path_factory):
    """A training run on the list with the 1 ms clip, under ``datarc.skip_bad_audio``: its folder."""
    data, _, _ = short_data
    expdir = tmp_path_factory.mktemp("skipped_run") / "exp"
    run_downstream(
        [DOWNSTREAM],
        _train_argv(expdir, tiny_ckpts["wavlm"], data, "config.downstream_expert.datarc.skip_bad_audio=True"),
    )
    return expdir


def test_short_clip_is_a_bad_row_before_training(short_data, tiny_ckpts, tmp_path, capsys):
    data, clip, sample_id = short_data
    with pytest.raises(SystemExit) as stopped:
        run_downstream([DOWNSTREAM], _train_argv(tmp_path / "exp", tiny_ckpts["wavlm"], data))
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert f"{data / 'train.csv'}:3 [{sample_id}]: {clip}: too short: 16 samples" in err
    assert "needs at least 400" in err  # the tiny WavLM's receptive field, from its front end
    assert not list((tmp_path / "exp").glob("*.ckpt"))


def test_short_clip_is_skipped_and_listed_under_skip_bad_audio(short_data, skipped_run):
    _, clip, sample_id = short_data
    assert os.path.isfile(skipped_run / "states-2.ckpt")
    (line,) = (skipped_run / "skipped_audio.txt").read_text().splitlines()
    assert sample_id in line and clip in line and "too short" in line


def test_short_clip_minimum_comes_from_config_without_a_known_upstream(tmp_path):
    """Under stock s3prl's runner (no receptive field handed over): ``datarc.min_seconds``, default 25 ms."""
    from distilmos.errors import ConfigError
    from distilmos.train.expert_base import MOSExpert

    def expert(datarc, **kwargs):
        return MOSExpert(8, {"datarc": datarc}, str(tmp_path), **kwargs)

    assert expert({}).min_samples() == 400
    assert expert({"min_seconds": 0.1}).min_samples() == 1600
    # this toolkit's runner tells the experts the upstream's receptive field (plugin_runner with it)
    told = {"plugin_runner": True}
    assert expert({}, upstream_min_samples=720, **told).min_samples() == 720
    assert expert({"min_seconds": 0.001}, upstream_min_samples=400, **told).min_samples() == 400  # never below it
    assert expert({}, upstream_min_samples=720).min_samples() == 400  # a stale value outside that runner: ignored
    with pytest.raises(ConfigError, match="datarc.min_seconds"):
        expert({"min_seconds": "soon"}).min_samples()


def _fit_argv(csv, ckpt, store, n_clusters):
    """``python -m upstream_tokens fit`` options: the tiny WavLM's k-means over ``csv``, quiet, on the CPU."""
    source = ["--csv", str(csv), "-u", "wavlm_local", "-k", ckpt]
    return ["fit", *source, "--out", str(store), "--n_clusters", str(n_clusters), "--quiet", "--device", "cpu"]


def test_short_clip_in_token_extraction_is_a_bad_row(short_data, tiny_ckpts, tmp_path, capsys):
    from upstream_tokens.cli import main as tokens_main

    data, clip, sample_id = short_data
    fit = _fit_argv(data / "train.csv", tiny_ckpts["wavlm"], tmp_path / "store", 4)
    assert tokens_main(fit) == 2
    assert f"train.csv:3 [{sample_id}]: {clip}: too short" in capsys.readouterr().err
    one = tmp_path / "one.csv"
    one.write_text(f"sample_id,system_id,wav_path,score\nlong,s,{_wav(tmp_path / 'long.wav')},3\n")
    assert tokens_main(_fit_argv(one, tiny_ckpts["wavlm"], tmp_path / "store", 4)) == 0
    alone = tmp_path / "alone.csv"  # the clip alone in its batch once crashed the upstream's convolutions
    alone.write_text(f"sample_id,system_id,wav_path,score\nclip,s,{clip},3\n")
    capsys.readouterr()
    for command in (
        ["dump", "--csv", str(alone), "--store", str(tmp_path / "store"), "--split", "x"],
        [
            "cache",
            "--csv",
            str(alone),
            "--store",
            str(tmp_path / "cache"),
            "--split",
            "x",
            "-u",
            "wavlm_local",
            "-k",
            tiny_ckpts["wavlm"],
        ],
    ):
        assert tokens_main(command + ["--quiet", "--device", "cpu"]) == 2
        assert f"alone.csv:2 [clip]: {clip}: too short" in capsys.readouterr().err


@pytest.fixture(scope="module")
def model(skipped_run):
    """A predictor file of that run."""
    from distilmos.predictor import export

    path = str(skipped_run.parent / "model.pt")
    export(str(skipped_run / "states-2.ckpt"), path)
    return path


def test_short_clip_fails_alone_in_the_predictor(short_data, model, tmp_path, capsys):
    from distilmos.predictor.cli import main as predict

    data, clip, _ = short_data
    out = tmp_path / "scores.csv"
    assert predict(["score", model, str(data / "train.csv"), "-o", str(out), "-q"]) == 1
    err = capsys.readouterr().err
    assert f"{clip}: too short: 16 samples at 16 kHz (1.0 ms), the upstream needs at least 400" in err
    n_rows = len(read_datalist(str(data / "train.csv"), check_audio=False))
    assert len(out.read_text().splitlines()) == n_rows  # header + every other file scored


# ---- byte-order marks and bytes that are not UTF-8 ---------------------------------------------------------


@pytest.fixture
def lists(tmp_path):
    """Two-row lists (data list CSV, plain score list, pool CSV) over two wavs, as text to write."""
    a, b = _wav(tmp_path / "a.wav"), _wav(tmp_path / "b.wav")
    return {
        "datalist": f"sample_id,system_id,wav_path,score\na,s1,{a},3.5\nb,s2,{b},2.0\n",
        "scorelist": f"{os.path.basename(a)},3.5\n{os.path.basename(b)},2.0\n",
        "pool": f"sample_id,system_id,wav_path,split\na,s1,{a},train\nb,s2,{b},heldout\n",
    }


def test_byte_order_mark_is_accepted_by_every_reader(lists, tmp_path):
    from distilmos.compress.pseudo_label import read_pool as read_student_pool
    from distilmos.corpora.common import read_lines, read_table
    from distilmos.data.datalist import looks_like_header, rows_from_score_list
    from distilmos.predictor.inputs import collect
    from distilmos.pretrain.tiny_hubert import read_pool
    from upstream_tokens.extract import read_list

    bom = b"\xef\xbb\xbf"
    paths = {}
    for name, text in lists.items():
        paths[name] = tmp_path / f"{name}.{'txt' if name == 'scorelist' else 'csv'}"
        paths[name].write_bytes(bom + text.encode())
    datalist, scorelist, pool = (str(paths[n]) for n in ("datalist", "scorelist", "pool"))
    assert [u.sample_id for u in read_datalist(datalist)] == ["a", "b"]  # training's reader
    assert [u.sample_id for u in read_list(datalist)[0]] == ["a", "b"]  # token extraction's
    assert [e.score for e in collect([datalist])] == [3.5, 2.0]  # the predictor's
    assert [e.score for e in collect([scorelist])] == [3.5, 2.0]
    assert not looks_like_header(scorelist)
    assert [r.sample_id for r in rows_from_score_list(scorelist, str(tmp_path), lambda s: s)] == ["a", "b"]
    assert [r["sample_id"] for _, r in read_table(datalist, ("sample_id",))] == ["a", "b"]  # corpus score files
    assert read_lines(scorelist)[0][1][0] == "a.wav"
    assert [r["sample_id"] for r in read_pool(pool)] == ["a", "b"]
    assert [r["sample_id"] for r in read_student_pool(datalist)] == ["a", "b"]


def test_byte_order_mark_through_token_extraction(lists, tiny_ckpts, tmp_path):
    from upstream_tokens.cli import main as tokens_main

    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + lists["datalist"].encode())
    assert tokens_main(_fit_argv(path, tiny_ckpts["wavlm"], tmp_path / "store", 2)) == 0


def _latin1(tmp_path, name, text, line):
    """``text`` with a Latin-1 "é" (byte 0xe9, not UTF-8) put at the end of line ``line``."""
    rows = text.encode().split(b"\n")
    rows[line - 1] += b"\xe9"
    path = tmp_path / name
    path.write_bytes(b"\n".join(rows))
    return str(path)


def test_non_utf8_byte_is_one_error_naming_file_and_line(lists, tiny_ckpts, model, tmp_path, capsys):
    from distilmos.corpora.common import read_table
    from distilmos.data.datalist import ListEncodingError  # a DataListError that names file and line
    from distilmos.data.score_list import main as prep_list
    from distilmos.predictor.cli import main as predict
    from upstream_tokens.cli import main as tokens_main

    datalist = _latin1(tmp_path, "latin1.csv", lists["datalist"], 3)
    scorelist = _latin1(tmp_path, "latin1.txt", lists["scorelist"], 2)
    where = f"{datalist}:3: byte 0xe9 is not UTF-8"
    for read in (read_datalist, lambda p: read_table(p, ("sample_id",))):
        with pytest.raises(ListEncodingError, match=where):
            read(datalist)
    assert issubclass(ListEncodingError, ToolkitError)
    assert (
        tokens_main(
            [
                "fit",
                "--csv",
                datalist,
                "-u",
                "wavlm_local",
                "-k",
                tiny_ckpts["wavlm"],
                "--out",
                str(tmp_path / "store"),
                "--quiet",
                "--device",
                "cpu",
            ]
        )
        == 2
    )
    assert where in capsys.readouterr().err
    assert predict(["score", model, datalist, "-q"]) == 2
    assert where in capsys.readouterr().err
    assert prep_list(["--list", scorelist, "--out", str(tmp_path / "out.csv")]) == 2
    assert f"{scorelist}:2: byte 0xe9 is not UTF-8" in capsys.readouterr().err
    assert predict(["score", model, scorelist, "-q"]) == 2  # a plain list: also named by line
    assert f"{scorelist}:2: byte 0xe9 is not UTF-8" in capsys.readouterr().err


def test_non_utf8_byte_stops_training_with_exit_2(lists, tiny_ckpts, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    _latin1(data, "train.csv", lists["datalist"], 2)
    for split in ("val", "test"):
        (data / f"{split}.csv").write_text(lists["datalist"])
    with pytest.raises(SystemExit) as stopped:
        run_downstream([DOWNSTREAM], _train_argv(tmp_path / "exp", tiny_ckpts["wavlm"], data))
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert f"{data / 'train.csv'}:2: byte 0xe9 is not UTF-8" in err and "Traceback" not in err


# ---- token stores whose meta disagrees with their arrays ------------------------------------------------


@pytest.fixture(scope="module")
def store(demo_data, tiny_ckpts, tmp_path_factory):
    """A k=4 token store of the tiny WavLM with its ``train`` split dumped."""
    from upstream_tokens.dump import dump_split
    from upstream_tokens.fit import fit_store

    out = str(tmp_path_factory.mktemp("store") / "wavlm_k4")
    train = os.path.join(demo_data["bvcc"], "train.csv")
    fit_store(train, "wavlm_local", tiny_ckpts["wavlm"], out, n_clusters=4, batch_size=64, progress=False)
    dump_split(train, out, "train", upstream_ckpt=tiny_ckpts["wavlm"], progress=False)
    return out


def _copy_with_meta(store, tmp_path, **changes):
    copy = str(tmp_path / "copy")
    shutil.copytree(store, copy)
    meta_path = os.path.join(copy, "meta.json")
    with open(meta_path) as handle:
        meta = json.load(handle)
    meta.update(changes)
    with open(meta_path, "w") as handle:
        json.dump(meta, handle)
    return copy


@pytest.mark.parametrize(
    "changes,why",
    [
        ({"n_clusters": 8}, "k 4 in the centroids, 8 in the meta"),  # once accepted: predictors over 8 classes
        ({"n_clusters": 2}, "k 4 in the centroids, 2 in the meta"),  # once an IndexError at the first step
        ({"layers": [1, 2]}, "centroids.npy holds float32[3, 4, 64]"),
        ({"token_dtype": "int8", "n_clusters": 300}, "token_dtype int8 cannot hold token ids 0..299"),
    ],
    ids=["k_larger", "k_smaller", "layers", "dtype"],
)
def test_store_meta_disagreeing_with_its_arrays_is_refused_at_open(store, tmp_path, capsys, changes, why):
    from upstream_tokens.cli import main as tokens_main
    from upstream_tokens.store import TokenStore, TokenStoreError

    copy = _copy_with_meta(store, tmp_path, **changes)
    with pytest.raises(TokenStoreError, match="meta.json and its arrays disagree") as caught:
        TokenStore(copy)
    assert copy in str(caught.value) and why in str(caught.value)
    assert tokens_main(["info", "--store", copy]) == 2
    assert why in capsys.readouterr().err


def test_token_id_outside_k_is_caught_when_read(store, tmp_path):
    from upstream_tokens.store import TokenStore, TokenStoreError

    copy = _copy_with_meta(store, tmp_path)
    with open(os.path.join(copy, "train.index.json")) as handle:
        sample_id, start, length = json.load(handle)["items"][2]
    array = np.load(os.path.join(copy, "train.npy"), mmap_mode="r+")
    array[start + length - 1, 1] = 4  # k = 4: ids 0..3
    array.flush()
    del array
    opened = TokenStore(copy)
    with pytest.raises(TokenStoreError, match=f"utterance '{sample_id}' holds token id 4, outside 0..3"):
        opened.tokens(sample_id)


def test_index_that_does_not_tile_its_split_is_refused(store, tmp_path):
    from upstream_tokens.store import TokenStore, TokenStoreError

    copy = _copy_with_meta(store, tmp_path)
    index_path = os.path.join(copy, "train.index.json")
    with open(index_path) as handle:
        index = json.load(handle)
    index["items"][0][2] += 1  # one utterance claims a frame of the next
    with open(index_path, "w") as handle:
        json.dump(index, handle)
    with pytest.raises(TokenStoreError, match="train.index.json: its utterances cover"):
        TokenStore(copy)


# ---- corpus preparation: exit status 2, one message ----------------------------------------------------

PREP_ERRORS = [
    ("distilmos.corpora", ["nisqa", "--root", "{tmp}/nowhere", "--out_dir", "{tmp}/o"], "nowhere: no such folder"),
    ("distilmos.corpora", ["nope", "--root", "{tmp}", "--out_dir", "{tmp}/o"], "unknown corpus 'nope'"),
    ("egs/bvcc/local/data_prep.py", ["--bvcc_root", "{tmp}/nowhere", "--out_dir", "{tmp}/o"], "no such folder"),
    ("egs/nisqa/local/data_prep.py", ["--nisqa_root", "{tmp}/nowhere", "--out_dir", "{tmp}/o"], "no such folder"),
    ("distilmos.data.score_list", ["--list", "{tmp}/nowhere.txt", "--out", "{tmp}/o.csv"], "nowhere.txt: cannot read"),
]


@pytest.mark.parametrize(
    "entry,argv,message",
    PREP_ERRORS,
    ids=["module", "module_unknown_corpus", "bvcc_data_prep", "nisqa_data_prep", "prep_list"],
)
def test_corpus_preparation_errors_exit_2(tmp_path, capsys, entry, argv, message):
    """Each entry point's main, in this process (a traceback would fail the test); the recipe test below runs
    distilmos-prep as its own process."""
    import importlib

    from distilmos import corpora

    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if entry.endswith("/data_prep.py"):
        status = corpora.main(argv, name=entry.split("/")[1])
    else:
        status = importlib.import_module(entry).main(argv)
    assert status == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


def test_corpus_preparation_refuses_an_unwritable_out_dir_before_reading(demo_corpus, tmp_path):
    from distilmos import corpora

    root, _ = demo_corpus
    (tmp_path / "file").write_text("")
    with pytest.raises(DataListError, match="file is not a folder"):
        corpora.prepare("bvcc", os.path.join(root, "bvcc"), str(tmp_path / "file" / "data"))
    out_dir = str(tmp_path / "file" / "d")
    assert corpora.main(["somos", "--root", os.path.join(root, "somos"), "--out_dir", out_dir]) == 2


def test_recipe_stage_1_with_a_bad_root_exits_2(tmp_path):
    where = ["--bvcc_root", tmp_path / "nowhere", "--datadir", tmp_path / "data", "--expdir", tmp_path / "exp"]
    result = run_recipe("bvcc/run.sh", "--stage", "1", "--stop_stage", "1", *where)
    assert result.returncode == 2 and "nowhere: no such folder" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "exp" / ".done.1").exists()


# ---- scores off the MOS scale ----------------------------------------------------------------------------------


def test_off_scale_scores_are_kept_with_one_warning_naming_them(tmp_path, capsys):
    from distilmos.data.score_list import main as prep_list

    wavs = [_wav(tmp_path / f"u{i}.wav") for i in range(40)]
    scores = [1 + (i % 9) / 2 for i in range(40)]
    scores[3], scores[10], scores[20] = 7.5, -2.0, 0.0
    path = tmp_path / "list.csv"
    path.write_text(
        "sample_id,system_id,wav_path,score\n"
        + "".join(f"u{i},s,{w},{s}\n" for i, (w, s) in enumerate(zip(wavs, scores)))
    )
    utts = read_datalist(str(path))
    assert [u.score for u in utts] == scores  # kept: a refusal would block lists on other scales
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "3 of 40 scores lie off the 1-5 MOS scale" in err
    for line, score in ((5, "7.5"), (12, "-2"), (22, "0")):
        assert f"{path}:{line} [u{line - 2}]: score {score}\n" in err
    # a list on another scale (0-100) is left alone
    path.write_text(
        "sample_id,system_id,wav_path,score\n" + "".join(f"u{i},s,{w},{20 + 2 * i}\n" for i, w in enumerate(wavs))
    )
    read_datalist(str(path))
    assert "warning" not in capsys.readouterr().err
    # corpus preparation warns too, once for the list it writes
    listing = tmp_path / "scores.txt"
    listing.write_text("".join(f"u{i}.wav,{s}\n" for i, s in enumerate(scores)))
    assert prep_list(["--list", str(listing), "--out", str(tmp_path / "out.csv")]) == 0
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and f"{listing}:4 [u3]: score 7.5" in err
