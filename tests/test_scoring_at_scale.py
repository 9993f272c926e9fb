"""Scoring at corpus scale: streamed output, resume after any kill, --retry_failed, shards and their merge,
``Predictor.score_iter`` (distilmos/predictor/streaming.py, shards.py).

The model is a tiny predictor file (the waveform itself as the one layer, an SSL-MOS head), so that each run
takes a fraction of a second and the tests can afford many kills.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import REPO

from distilmos.locks import RunLock
from distilmos.predictor import downstreams, load
from distilmos.predictor import streaming as streaming_module
from distilmos.predictor import upstream_entry as parts
from distilmos.predictor.cli import main as predict_main
from distilmos.predictor.fileformat import write_predictor
from distilmos.predictor.inputs import iter_entries
from distilmos.predictor.shards import rank_of, shard_entries, shard_size, shard_spec

CHUNK = 4
ENV = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")


def _model(path, seed=0):
    from distilmos.models.ssl_mos import SSLMOSModel

    torch.manual_seed(seed)
    state = {f"model.{k}": v for k, v in SSLMOSModel(1).state_dict().items()}
    config = {"feature_selection": "hidden_states", "layer_selection": None, "normalize": False}
    config.update(downsample_rate=1, output_dim=1, n_layers=None)
    blob = {
        "card": {"downstream": {"expert": "ssl_mos"}},
        "upstream": parts.waveform_entry(),
        "featurizer": {"config": config, "state_dict": {}},
        "downstream": downstreams.make_entry("ssl_mos", state)[0],
    }
    write_predictor(blob, str(path))
    return str(path)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return _model(tmp_path_factory.mktemp("model") / "m.pt")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A folder of 42 short wavs (two of them unreadable: one empty, one truncated) and a CSV list of the
    same files with true scores and systems: ``(folder, csv)``."""
    root = tmp_path_factory.mktemp("corpus")
    folder = root / "wavs"
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(40):
        path = folder / ("sub" if i % 9 == 0 else "") / f"sys{i % 3}-u{i:03d}.wav"
        sf.write(str(path), 0.1 * rng.standard_normal(int(rng.uniform(0.02, 0.1) * 16000)).astype("float32"), 16000)
        paths.append(str(path))
    (folder / "sys0-u010x.wav").write_bytes(b"")  # empty, in the middle of the sorted order
    whole = (folder / "sys2-u020.wav").read_bytes()
    (folder / "sys2-u020x.wav").write_bytes(whole[: len(whole) // 2])  # truncated
    listing = root / "list.csv"
    entries = list(iter_entries([str(folder)]))
    listing.write_text(
        "wav_path,score,system_id\n"
        + "".join(f"{e.wav_path},{1 + i % 5}.5,{os.path.basename(e.wav_path)[:4]}\n" for i, e in enumerate(entries))
    )
    return str(folder), str(listing)


def _argv(model, inputs, out, *extra):
    return ["score", model, *inputs, "-o", str(out), "--chunk_size", str(CHUNK), "-q", *extra]


def _score(model, inputs, out, *extra, expect=1):
    code = predict_main(_argv(model, inputs, out, *extra))
    assert code == expect
    return code


def _bytes(out):
    return open(out, "rb").read(), open(f"{out}.failed.tsv", "rb").read()


@pytest.fixture(scope="module")
def reference(model, corpus, tmp_path_factory):
    """An uninterrupted run over the CSV list (true scores: metrics too): ``(out, sidecar bytes, metrics)``."""
    root = tmp_path_factory.mktemp("reference")
    out = root / "ref.csv"
    _score(model, [corpus[1]], out, "--metrics", str(root / "metrics.json"))
    return str(out), _bytes(out), json.loads((root / "metrics.json").read_text())


# ---- a kill at any point, then a rerun -------------------------------------------------------------------


class Killed(BaseException):
    """Stands in for SIGKILL inside the process: nothing after it runs, the bytes written stay."""


class _Budget:
    """A file handle that lets ``left[0]`` more bytes through, then stops the run mid-write."""

    def __init__(self, handle, left):
        self.handle, self.left = handle, left

    def write(self, data):
        take = data[: max(self.left[0], 0)]
        self.handle.write(take)
        self.handle.flush()
        self.left[0] -= len(take)
        if len(take) < len(data) or self.left[0] <= 0:
            raise Killed

    def __getattr__(self, name):
        return getattr(self.handle, name)


def test_a_kill_anywhere_in_a_write_then_a_rerun_gives_the_bytes_of_an_uninterrupted_run(
    model, corpus, reference, tmp_path, monkeypatch, capsys
):
    """Stopped after a random number of written bytes (in the sidecar or in the rows, torn lines included),
    eight times over; the rerun cuts what is torn or half a chunk, redoes at most one chunk and ends with
    the reference's bytes, and the metrics of its output (streamed back) are the reference's."""
    ref_out, ref_bytes, ref_metrics = reference
    written = sum(len(b) for b in ref_bytes) - len("wav_path,pred,score\n") - len(streaming_module.SIDECAR_HEADER)
    rng = random.Random(0)
    open_at = streaming_module._open_at
    for trial in range(8):
        out = tmp_path / f"out{trial}.csv"
        budget = [rng.randrange(1, written)]
        with monkeypatch.context() as patch:
            patch.setattr(
                streaming_module, "_open_at", lambda path, offset, left=budget: _Budget(open_at(path, offset), left)
            )
            with pytest.raises(Killed):
                _score(model, [corpus[1]], out)
        assert _bytes(out) != ref_bytes
        capsys.readouterr()
        _score(model, [corpus[1]], out, "--metrics", str(tmp_path / "m.json"))
        assert _bytes(out) == ref_bytes, trial
        err = capsys.readouterr().err
        assert "done by an earlier run" in err or "scored 40 of 42" in err
        assert json.loads((tmp_path / "m.json").read_text()) == ref_metrics
        run = json.loads(open(f"{out}.run.json").read())
        assert run["finished"] == {"inputs": 42, "scored": 40, "failed": 2}


KILLABLE = """\
import sys, time
from distilmos.predictor import predictor, streaming
from distilmos.predictor.cli import main

forward = predictor.Predictor._forward
predictor.Predictor._forward = lambda self, *a, **k: (time.sleep(0.01), forward(self, *a, **k))[1]


class Piecewise:  # a slow disk: each write shows up in two pieces
    def __init__(self, handle):
        self.handle = handle

    def write(self, data):
        for piece in (data[: len(data) // 2], data[len(data) // 2 :]):
            self.handle.write(piece)
            self.handle.flush()
            time.sleep(0.005)

    def __getattr__(self, name):
        return getattr(self.handle, name)


open_at = streaming._open_at
streaming._open_at = lambda path, offset: Piecewise(open_at(path, offset))
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kill_9_at_a_random_point_then_rerun_gives_the_bytes_of_an_uninterrupted_run(
    model, corpus, reference, tmp_path, seed, capsys
):
    """A real SIGKILL of a scoring process (slowed down so that the kill lands inside the run, often in the
    middle of a write); the rerun takes over its lock and finishes with the reference's bytes."""
    _, ref_bytes, _ = reference
    out = tmp_path / "out.csv"
    threshold = random.Random(seed).uniform(0.15, 0.9) * len(ref_bytes[0])
    argv = ["score", model, corpus[1], "-o", str(out), "--chunk_size", str(CHUNK), "-q", "--num_workers", "0"]
    proc = subprocess.Popen([sys.executable, "-c", KILLABLE, *argv], env=ENV, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if out.exists() and out.stat().st_size >= threshold:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.002)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    proc.stderr.close()
    assert ref_bytes[0].startswith(open(out, "rb").read()[:-100]) and len(open(out, "rb").read()) < len(ref_bytes[0])
    assert json.loads(open(f"{out}.run.json").read())["finished"] is None
    capsys.readouterr()
    _score(model, [corpus[1]], out)
    assert _bytes(out) == ref_bytes
    assert "done by an earlier run" in capsys.readouterr().err  # at least its first chunk was kept


# ---- what a rerun refuses, --overwrite, --retry_failed ------------------------------------------------------


def test_another_model_format_or_settings_is_refused_and_overwrite_starts_afresh(
    model, corpus, reference, tmp_path, capsys
):
    _, ref_bytes, _ = reference
    out = tmp_path / "s.csv"
    _score(model, [corpus[1]], out)
    capsys.readouterr()
    other = _model(tmp_path / "other.pt", seed=1)
    refusals = {
        "model.sha256": (other, []),
        "output.format": (model, ["--jsonl"]),
        "settings.max_seconds": (model, ["--max_seconds", "10"]),
        "settings.chunk_size": (model, ["--chunk_size", "5"]),
        "output.columns": (model, []),  # the folder: no true scores, no score column
    }
    for key, (model_file, extra) in refusals.items():
        inputs = [corpus[0]] if key == "output.columns" else [corpus[1]]
        assert predict_main(_argv(model_file, inputs, out, *extra)) == 2
        err = capsys.readouterr().err
        assert err.count("error:") == 1 and key in err and "--overwrite" in err, (key, err)
        assert _bytes(out) == ref_bytes  # refused before anything was touched
    # a file that no resumable run wrote is not taken over either
    plain = tmp_path / "plain.csv"
    plain.write_text("my,own\nnotes,here\n")
    assert predict_main(["score", model, corpus[1], "-o", str(plain), "-q"]) == 2
    assert "--overwrite" in capsys.readouterr().err and plain.read_text() == "my,own\nnotes,here\n"
    _score(other, [corpus[1]], out, "--overwrite")
    assert _bytes(out)[0] != ref_bytes[0]
    _score(model, [corpus[1]], out, "--overwrite")
    assert _bytes(out) == ref_bytes


def test_inputs_that_changed_since_the_output_was_written_are_refused(model, corpus, tmp_path, capsys):
    folder, _ = corpus
    out = tmp_path / "s.csv"
    _score(model, [folder], out)
    capsys.readouterr()
    # the same folder given after another file: every row is now one place off
    assert predict_main(_argv(model, [os.path.join(folder, "sub", "sys0-u000.wav"), folder], out)) == 2
    err = capsys.readouterr().err
    assert "does not follow the inputs" in err and "--overwrite" in err


def test_retry_failed_rescores_the_sidecar_and_keeps_input_order(model, corpus, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "wavs"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(10):
        sf.write(str(folder / f"u{i:02d}.wav"), 0.1 * rng.standard_normal(800 + 100 * i).astype("float32"), 16000)
    broken = [folder / "u02.wav", folder / "u07.wav"]
    saved = [b.read_bytes() for b in broken]
    for path in broken:
        path.write_bytes(b"")
    out = tmp_path / "s.csv"
    _score(model, [str(folder)], out)
    assert streaming_module.failures(streaming_module.Target(str(out)), 5)[1] == 2
    for path, data in zip(broken, saved):
        path.write_bytes(data)  # the disk is back
    before = _bytes(out)
    _score(model, [str(folder)], out)  # a rerun does not retry them unless asked
    assert _bytes(out) == before
    # a kill between the two renames of the rewrite: the next run finishes the commit
    replace, moved = os.replace, []

    def replace_once(src, dst):
        if src.endswith(".new"):  # the committed pair (not the atomic writes of small files)
            if moved:
                raise Killed
            moved.append(src)
        replace(src, dst)

    with monkeypatch.context() as patch:
        patch.setattr(streaming_module.os, "replace", replace_once)
        with pytest.raises(Killed):
            _score(model, [str(folder)], out, "--retry_failed")
    capsys.readouterr()
    _score(model, [str(folder)], out, expect=0)
    assert "0 now" in capsys.readouterr().err
    fresh = tmp_path / "fresh.csv"
    _score(model, [str(folder)], fresh, expect=0)
    rows = [line.split(",") for line in open(out).read().splitlines()]
    fresh_rows = [line.split(",") for line in open(fresh).read().splitlines()]
    assert [r[0] for r in rows] == [r[0] for r in fresh_rows]  # input order, the retried files in their places
    np.testing.assert_allclose([float(r[1]) for r in rows[1:]], [float(r[1]) for r in fresh_rows[1:]], atol=2e-6)
    assert open(f"{out}.failed.tsv").read() == "wav_path\treason\n"
    assert not [p for p in os.listdir(tmp_path) if p.endswith((".new", ".retry", ".commit.json"))]

    # --retry_failed on a finished output whose files still fail: they stay, in order, and nothing else moves
    for path in broken:
        path.write_bytes(b"")
    again = tmp_path / "again.csv"
    _score(model, [str(folder)], again)
    kept = _bytes(again)
    capsys.readouterr()
    _score(model, [str(folder)], again, "--retry_failed")
    assert _bytes(again) == kept and "2 failed file(s) retried" in capsys.readouterr().err


def test_a_second_run_into_the_same_output_is_refused(model, corpus, tmp_path, capsys):
    out = tmp_path / "s.csv"
    with RunLock(f"{out}.lock", "held by a test"):
        assert predict_main(["score", model, corpus[0], "-o", str(out), "-q"]) == 2
    assert f"output {out} is in use by another run" in capsys.readouterr().err
    assert not out.exists()


def test_a_bad_row_at_the_end_of_a_list_is_refused_before_any_scoring(model, corpus, tmp_path, capsys):
    listing = tmp_path / "list.csv"
    listing.write_text(open(corpus[1]).read() + "x.wav,not-a-number,s\n")
    out = tmp_path / "s.csv"
    assert predict_main(["score", model, str(listing), "-o", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert f"{listing}: 1 bad row(s)" in err and f"{listing}:44: score 'not-a-number'" in err
    assert not out.exists()


# ---- shards ----------------------------------------------------------------------------------------------


def test_shards_take_whole_chunks_round_robin():
    entries = [str(i) for i in range(23)]
    for nshard in (1, 2, 3, 7):
        taken = [list(shard_entries(entries, CHUNK, nshard, r)) for r in range(nshard)]
        assert sorted(sum(taken, [])) == sorted(entries)
        assert [len(t) for t in taken] == [shard_size(len(entries), CHUNK, nshard, r) for r in range(nshard)]
        for r, mine in enumerate(taken):
            assert all(rank_of(int(e), CHUNK, nshard) == r for e in mine)
            assert max(len(t) for t in taken) - len(mine) <= CHUNK  # balanced to a chunk
    assert shard_spec(None, None, {"WORLD_SIZE": "4", "RANK": "3"}) == (4, 3, True)
    assert shard_spec(2, 1, {"WORLD_SIZE": "4", "RANK": "3"}) == (2, 1, False)
    assert shard_spec(None, None, {}) == (1, 0, False)
    with pytest.raises(ValueError, match="0 <= rank < nshard"):
        shard_spec(2, 2, {})


def test_two_shards_and_merge_equal_one_process(model, corpus, reference, tmp_path, capsys):
    _, ref_bytes, ref_metrics = reference
    out = tmp_path / "s.csv"
    merge = ["merge", "-o", str(out), "--nshard", "2", corpus[1]]
    rank = {r: _argv(model, [corpus[1]], out, "--nshard", "2", "--rank", str(r)) for r in (0, 1)}
    assert predict_main(rank[0]) == 0
    assert predict_main(merge) == 2
    assert f"part 1 of 2 ({out}.part-1-of-2) is missing" in capsys.readouterr().err
    assert predict_main(rank[1]) == 0  # a part with failed files is done: exit 0, so that a merge job runs
    os.remove(f"{out}.part-1-of-2.done")  # as if rank 1 were still running or had been killed
    assert predict_main(merge) == 2
    assert f"part 1 of 2 ({out}.part-1-of-2) is incomplete" in capsys.readouterr().err
    assert not out.exists()
    assert predict_main(rank[1]) == 0
    capsys.readouterr()
    assert predict_main(merge + ["--metrics", str(tmp_path / "m.json")]) == 1  # two files failed
    assert _bytes(out) == ref_bytes
    assert json.loads((tmp_path / "m.json").read_text()) == ref_metrics
    assert sorted(os.listdir(tmp_path)) == ["m.json", "s.csv", "s.csv.failed.tsv", "s.csv.run.json"]
    # a rerun of a finished sharded job has nothing to do; a merge over other inputs is refused
    assert predict_main(rank[1]) == 1
    assert "already scored and merged" in capsys.readouterr().err and _bytes(out) == ref_bytes


def test_torchrun_env_defaults_shard_and_rank_zero_merges(model, corpus, reference, tmp_path):
    """Two processes with torchrun's WORLD_SIZE / RANK / LOCAL_RANK and no shard flags: each scores its
    chunks, rank 0 waits for rank 1 and merges; the bytes are the one-process run's."""
    _, ref_bytes, _ = reference
    out = tmp_path / "s.csv"
    argv = [sys.executable, "-m", "distilmos.predictor", "score", model, corpus[1], "-o", str(out), "-q"]
    argv += ["--chunk_size", str(CHUNK)]
    procs = [
        subprocess.Popen(argv, env=dict(ENV, WORLD_SIZE="2", RANK=str(r), LOCAL_RANK=str(r)), stderr=subprocess.PIPE)
        for r in (1, 0)
    ]
    errs = [p.communicate(timeout=300)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 1], errs  # rank 1: its part is done; rank 0: two files failed
    assert "merged 2 parts" in errs[1] and "scored 40 of 42" in errs[1]
    assert _bytes(out) == ref_bytes
    assert not [p for p in os.listdir(tmp_path) if ".part-" in p]


# ---- the Python API -------------------------------------------------------------------------------------


@pytest.mark.parametrize("num_workers", [0, 2])
def test_score_iter_streams_in_input_order_and_equals_predict(model, corpus, num_workers):
    folder, _ = corpus
    paths = [e.wav_path for e in iter_entries([folder])]
    predictor = load(model, device="cpu")
    pulled = []

    def lazily():
        for path in paths:
            pulled.append(path)
            yield path

    results = predictor.score_iter(lazily(), chunk_size=5, num_workers=num_workers)
    first = next(results)
    assert first.index == 0 and first.path == paths[0]
    assert len(pulled) <= 5 * (2 + 2 * num_workers)  # a chunk or a few read ahead, not the whole list
    results = [first, *results]
    assert [r.index for r in results] == list(range(len(paths))) and [r.path for r in results] == paths
    expected = predictor.predict(paths=paths, on_error="nan")
    got = [r.pred if r.ok else float("nan") for r in results]
    np.testing.assert_allclose(got, expected, atol=2e-6)
    assert [r.ok for r in results].count(False) == 2
