"""upstream_tokens end to end on tiny real-format upstreams and a generated corpus: fit, dump, resume,
shards, the reader and its errors, the CLI."""

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import DURATIONS, write_corpus

from distilmos.data.audio import AudioError, load_audio
from distilmos.data.datalist import DataListError
from distilmos.upstream.build import build_upstream
from upstream_tokens import cli
from upstream_tokens.dump import dump_split, finalize_split
from upstream_tokens.extract import Batching, FeatureExtractor, read_list
from upstream_tokens.fit import fit_from_shards, fit_store
from upstream_tokens.kmeans import assign
from upstream_tokens.store import TokenStore, TokenStoreError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIT = dict(n_clusters=8, batch_size=16, seed=0, progress=False)
BATCHING = Batching(max_batch_seconds=3.0, max_batch_utts=4, max_pad=0.5)


def store_files(path):
    """``{relative path: bytes}`` of every file under a store."""
    out = {}
    for root, _, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            out[os.path.relpath(full, path)] = open(full, "rb").read()
    return out


class CountingUpstream(torch.nn.Module):
    """Counts forward calls of a wrapped s3prl upstream."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.calls = inner, 0

    def get_downsample_rates(self, key):
        return self.inner.get_downsample_rates(key)

    def forward(self, wavs):
        self.calls += 1
        return self.inner(wavs)


@pytest.fixture(scope="module")
def fitted(tiny_ckpts, corpus, tmp_path_factory):
    """A fitted store (tiny WavLM, k=8, all 3 layers), no split dumped."""
    out = str(tmp_path_factory.mktemp("stores") / "fitted")
    fit_store(corpus, "wavlm_local", tiny_ckpts["wavlm"], out, batching=BATCHING, **FIT)
    return out


@pytest.fixture(scope="module")
def reference(fitted, corpus, tmp_path_factory):
    """The fitted store with split ``val`` dumped in one uninterrupted run."""
    out = str(tmp_path_factory.mktemp("stores") / "reference")
    shutil.copytree(fitted, out)
    dump_split(corpus, out, "val", batching=BATCHING, progress=False)
    return out


def copy_of(store, tmp_path, name="copy"):
    out = str(tmp_path / name)
    shutil.copytree(store, out)
    return out


# ------------------------------------------------------------------------------ fit, format, frames


def test_fit_writes_a_complete_store(fitted, tiny_ckpts):
    assert sorted(os.listdir(fitted)) == ["centroids.npy", "meta.json", "summary.json"]
    store = TokenStore(fitted)
    meta = store.meta
    assert store.layers == [1, 2, 3] and store.n_clusters == 8 and store.downsample_rate == 320
    assert meta["upstream"] == "wavlm_local" and meta["upstream_ckpt"] == tiny_ckpts["wavlm"]
    assert len(meta["upstream_ckpt_sha256"]) == 64 and meta["sample_rate"] == 16000
    assert meta["frame_law"] == {"rate": 320, "offset": -80} and meta["token_dtype"] == "int16"
    assert meta["backend"] == "sklearn" and meta["kmeans"]["batch_size"] == 16 and meta["seed"] == 0
    assert {"torch", "numpy", "sklearn", "s3prl"} <= set(meta["versions"])
    centroids = store.centroids()
    assert centroids.shape == (3, 8, 64) and centroids.dtype == np.float32
    fit = store.summary["fit"]
    assert fit["n_utterances"] == len(DURATIONS) and fit["clusters_used"] == [8, 8, 8]
    assert len(set(fit["frames_per_layer"])) == 1 and len(fit["inertia"]) == 3


def test_torch_backend_gives_the_same_format(fitted, corpus, tiny_ckpts, tmp_path):
    out, again = str(tmp_path / "torch"), str(tmp_path / "torch-again")
    for path in (out, again):
        fit_store(corpus, "wavlm_local", tiny_ckpts["wavlm"], path, backend="torch", batching=BATCHING, **FIT)
    assert np.array_equal(TokenStore(out).centroids(), TokenStore(again).centroids())  # seeded
    dump_split(corpus, out, "val", batching=BATCHING, progress=False)
    a, b = TokenStore(fitted), TokenStore(out)
    assert b.meta["backend"] == "torch" and set(a.meta) == set(b.meta)
    assert a.centroids().shape == b.centroids().shape and a.centroids().dtype == b.centroids().dtype
    assert set(b.summary["fit"]) == set(a.summary["fit"])
    assert b.tokens("sys0-utt00").dtype == torch.int64 and b.tokens("sys0-utt00").shape[1] == 3


@pytest.mark.parametrize("arch", ["wavlm", "hubert", "wav2vec2"])
def test_token_frames_equal_the_upstreams_own_frames(arch, tiny_ckpts, corpus, tmp_path):
    """Batched with padding, every utterance still gets exactly the frames of its lone forward."""
    out = str(tmp_path / arch)
    fit_store(
        corpus,
        f"{arch}_local",
        tiny_ckpts[arch],
        out,
        layers="2",
        n_clusters=4,
        batch_size=16,
        batching=BATCHING,
        progress=False,
    )
    dump_split(corpus, out, "val", batching=BATCHING, progress=False)
    store = TokenStore(out)
    upstream = build_upstream(f"{arch}_local", tiny_ckpts[arch]).eval()
    utterances, lengths = read_list(corpus)
    assert any(len(b) > 1 and len({lengths[i] for i in b}) > 1 for b in BATCHING.plan(lengths))  # padding happened
    for utt in utterances:
        with torch.no_grad():
            alone = upstream([load_audio(utt.wav_path)])["hidden_states"][2].shape[1]
        assert store.tokens(utt.sample_id).shape == (alone, 1)


def test_unpadded_batches_match_one_utterance_at_a_time(fitted, corpus, tiny_ckpts, tmp_path):
    """With max_pad=0 batches hold equal lengths only, and tokens equal a lone forward's tokens."""
    out = copy_of(fitted, tmp_path)
    exact = Batching(max_batch_seconds=3.0, max_batch_utts=4, max_pad=0.0)
    utterances, lengths = read_list(corpus)
    assert any(len(b) > 1 for b in exact.plan(lengths))
    dump_split(corpus, out, "val", batching=exact, progress=False)
    store = TokenStore(out)
    extractor = FeatureExtractor.from_spec("wavlm_local", tiny_ckpts["wavlm"])
    centroids = torch.from_numpy(store.centroids())
    for utt in utterances:
        _, feats = extractor([load_audio(utt.wav_path)])
        labels, _ = assign(feats, centroids)
        assert torch.equal(store.tokens(utt.sample_id), labels.t())


def test_one_forward_per_batch_whatever_the_layers(corpus, tiny_ckpts, tmp_path):
    utterances, lengths = read_list(corpus)
    one_per_batch = Batching(max_batch_seconds=3.0, max_batch_utts=1, max_pad=0.5)
    calls = {}
    for layers in ("1", "all"):
        for batching in (BATCHING, one_per_batch):
            upstream = CountingUpstream(build_upstream("wavlm_local", tiny_ckpts["wavlm"]))
            extractor = FeatureExtractor(upstream, layers=layers)
            upstream.calls = 0  # start-up probes (frame law) are not per utterance
            out = str(tmp_path / f"{layers}-{batching.max_batch_utts}")
            fit_store(
                corpus,
                "wavlm_local",
                tiny_ckpts["wavlm"],
                out,
                layers=layers,
                batching=batching,
                extractor=extractor,
                **FIT,
            )
            fit_calls, upstream.calls = upstream.calls, 0
            dump_split(corpus, out, "val", batching=batching, extractor=extractor, progress=False)
            calls[layers, batching.max_batch_utts] = (fit_calls, upstream.calls)
    n_batches = len(BATCHING.plan(lengths))
    assert n_batches < len(utterances)
    assert calls["1", 4] == calls["all", 4] == (n_batches, n_batches)
    assert calls["1", 1] == calls["all", 1] == (len(utterances), len(utterances))


# -------------------------------------------------------------------------- resume, shards, merge


def test_dump_stopped_midway_resumes_to_identical_bytes(reference, fitted, corpus, tmp_path):
    out = copy_of(fitted, tmp_path)
    done = []

    def stop_after_three(batch):
        done.append(batch)
        if len(done) == 3:
            raise KeyboardInterrupt("stopped")

    with pytest.raises(KeyboardInterrupt):
        dump_split(corpus, out, "val", batching=BATCHING, progress=False, on_part=stop_after_three)
    assert not os.path.exists(os.path.join(out, "val.index.json"))  # the split does not look whole
    assert "val" not in TokenStore(out).split_sizes()
    assert len([n for n in os.listdir(os.path.join(out, "val.parts")) if n.endswith(".npz")]) == 3
    rerun = []
    dump_split(corpus, out, "val", batching=BATCHING, progress=False, on_part=rerun.append)
    assert len(rerun) == len(BATCHING.plan(read_list(corpus)[1])) - 3 and not set(rerun) & set(done)
    assert store_files(out) == store_files(reference)


def test_dump_killed_hard_resumes_to_identical_bytes(reference, fitted, corpus, tmp_path):
    """SIGKILL in the middle of a dump (no cleanup at all), then a rerun."""
    out = copy_of(fitted, tmp_path)
    script = textwrap.dedent(f"""
        import os, signal
        from upstream_tokens.dump import dump_split
        from upstream_tokens.extract import Batching
        seen = []
        def kill(batch):
            seen.append(batch)
            if len(seen) == 2:
                os.kill(os.getpid(), signal.SIGKILL)
        dump_split({corpus!r}, {out!r}, "val", batching=Batching(**{BATCHING.__dict__!r}),
                   progress=False, on_part=kill)
    """)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert not os.path.exists(os.path.join(out, "val.npy"))
    dump_split(corpus, out, "val", batching=BATCHING, progress=False)
    assert store_files(out) == store_files(reference)


def test_sharded_dump_merged_equals_unsharded(reference, fitted, corpus, tmp_path):
    out = copy_of(fitted, tmp_path)
    for rank in (0, 1):
        # rank 1 reads audio in worker processes: that must not change a byte either
        batching = Batching(**dict(BATCHING.__dict__, num_workers=2 * rank))
        result = dump_split(corpus, out, "val", batching=batching, nshard=3, rank=rank, progress=False)
        assert result["rank"] == rank
    with pytest.raises(TokenStoreError, match=r"rank\(s\) \[2\] of 3 are not done"):
        finalize_split(out, "val", nshard=3)
    dump_split(corpus, out, "val", batching=BATCHING, nshard=3, rank=2, progress=False)
    finalize_split(out, "val", nshard=3)
    assert store_files(out) == store_files(reference)


def test_sharded_fit_then_from_shards(corpus, tiny_ckpts, tmp_path):
    out = str(tmp_path / "sharded")
    fit_store(corpus, "wavlm_local", tiny_ckpts["wavlm"], out, batching=BATCHING, nshard=2, rank=0, **FIT)
    with pytest.raises(TokenStoreError, match=r"rank\(s\) \[1\]"):
        fit_from_shards(out, 2)
    with pytest.raises(TokenStoreError, match="fit_shards"):
        TokenStore(out)  # not a store yet, and the error says how to finish it
    fit_store(corpus, "wavlm_local", tiny_ckpts["wavlm"], out, batching=BATCHING, nshard=2, rank=1, **FIT)
    summary = fit_from_shards(out, 2)
    assert sorted(os.listdir(out)) == ["centroids.npy", "meta.json", "summary.json"]
    store = TokenStore(out)
    assert store.meta["fit_shards"] == 2 and store.centroids().shape == (3, 8, 64)
    assert summary["n_utterances"] == len(DURATIONS) and summary["shards"] == 2
    dump_split(corpus, out, "val", batching=BATCHING, progress=False)
    assert len(TokenStore(out)) == len(DURATIONS)


def test_dump_rerun_is_a_no_op_and_other_lists_are_refused(reference, corpus, tmp_path):
    out = copy_of(reference, tmp_path)
    before = store_files(out)
    dump_split(corpus, out, "val", batching=BATCHING, progress=False)
    assert store_files(out) == before
    other = write_corpus(str(tmp_path / "other"), durations=[0.5, 0.6], seed=1)
    with pytest.raises(TokenStoreError, match="another data list"):
        dump_split(other, out, "val", progress=False)
    dump_split(other, out, "val", progress=False, overwrite=True)
    assert TokenStore(out).split_sizes() == {"val": 2}
    with pytest.raises(TokenStoreError, match="--overwrite"):
        fit_store(other, "wavlm_local", None, out, progress=False)


def test_dump_with_other_batching_refuses_unfinished_parts(fitted, corpus, tmp_path):
    out = copy_of(fitted, tmp_path)

    def stop(batch):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        dump_split(corpus, out, "val", batching=BATCHING, progress=False, on_part=stop)
    with pytest.raises(TokenStoreError, match="another plan"):
        dump_split(corpus, out, "val", batching=Batching(max_pad=0.0), progress=False)


# ----------------------------------------------------------------------------------------- reader


def test_reader_tokens_and_meta_check(reference, tiny_ckpts):
    store = TokenStore(reference)
    assert "sys0-utt00" in store and "nope" not in store and len(store) == len(DURATIONS)
    tokens = store.tokens("sys1-utt01")
    assert tokens.dtype == torch.int64 and tokens.shape == (store.expected_frames(8000), 3)
    assert int(tokens.min()) >= 0 and int(tokens.max()) < 8
    store.check("wavlm_local", tiny_ckpts["wavlm"], 8, [1, 2, 3])
    store.check("wavlm_local", None)


def test_reader_names_each_mismatching_field(reference, tiny_ckpts):
    store = TokenStore(reference)
    cases = {
        "upstream: store has 'wavlm_local', run uses 'hubert_local'": dict(upstream="hubert_local", upstream_ckpt=None),
        "upstream checkpoint": dict(upstream=None, upstream_ckpt=tiny_ckpts["hubert"]),
        "n_clusters (k): store has 8, run uses 200": dict(upstream=None, upstream_ckpt=None, n_clusters=200),
        "layers: store has [1, 2, 3], run uses [1, 2]": dict(upstream=None, upstream_ckpt=None, layers=[1, 2]),
    }
    for expected, kwargs in cases.items():
        with pytest.raises(TokenStoreError) as info:
            store.check(**kwargs)
        assert expected in str(info.value)
        assert isinstance(info.value, ValueError)
    with pytest.raises(TokenStoreError) as info:
        store.check("hubert_local", tiny_ckpts["hubert"], 200, [1])
    assert all(field in str(info.value) for field in ("upstream:", "checkpoint", "n_clusters", "layers"))


def test_reader_missing_sample_id(reference):
    with pytest.raises(TokenStoreError, match=r"'sys9-utt99' is in no split .* val \(12\)"):
        TokenStore(reference).tokens("sys9-utt99")


def test_reader_truncated_array(reference, tmp_path):
    out = copy_of(reference, tmp_path)
    path = os.path.join(out, "val.npy")
    with open(path, "r+b") as handle:
        handle.truncate(os.path.getsize(path) - 10)
    with pytest.raises(TokenStoreError, match=r"val\.npy: truncated or damaged"):
        TokenStore(out)
    with open(path, "r+b") as handle:
        handle.truncate(20)  # cut inside the header
    with pytest.raises(TokenStoreError, match="unreadable token array"):
        TokenStore(out)


def test_not_a_store(tmp_path):
    with pytest.raises(TokenStoreError, match="not a token store"):
        TokenStore(str(tmp_path))


def test_store_in_dataloader_workers(reference):
    store = TokenStore(reference)
    ids = store.sample_ids()
    store.tokens(ids[0])  # maps the array in this process before the workers start

    class Tokens(torch.utils.data.Dataset):
        def __len__(self):
            return len(ids)

        def __getitem__(self, i):
            return store.tokens(ids[i])

    loader = torch.utils.data.DataLoader(Tokens(), batch_size=None, num_workers=2)
    got = list(loader)
    assert all(torch.equal(a, store.tokens(i)) for a, i in zip(got, ids))
    again = pickle.loads(pickle.dumps(store))
    assert torch.equal(again.tokens(ids[3]), store.tokens(ids[3]))


def test_csv_with_bad_audio_names_the_file(fitted, corpus, tiny_ckpts, tmp_path):
    folder = str(tmp_path / "bad")
    csv = write_corpus(folder, durations=[0.5, 0.6, 0.7])
    # A file whose header is fine but whose samples cannot be used: the dump's load names it.
    nan_wav = os.path.join(folder, "wav", "utt01.wav")
    wav = np.full(9600, 0.1, dtype=np.float32)
    wav[100] = np.nan
    sf.write(nan_wav, wav, 16000, subtype="FLOAT")
    out = copy_of(fitted, tmp_path)
    with pytest.raises(AudioError, match="utt01.wav"):
        dump_split(csv, out, "val", progress=False)
    # A missing file is caught before anything runs, by fit and dump alike.
    os.remove(os.path.join(folder, "wav", "utt02.wav"))
    with pytest.raises(DataListError, match="utt02.wav"):
        dump_split(csv, out, "val", progress=False)
    with pytest.raises(DataListError, match="utt02.wav"):
        fit_store(csv, "wavlm_local", tiny_ckpts["wavlm"], str(tmp_path / "new"), progress=False)


# -------------------------------------------------------------------------------------------- CLI


def test_cli_fit_dump_merge_info(corpus, tiny_ckpts, tmp_path, capsys):
    out = str(tmp_path / "cli")
    common = ["--max_batch_seconds", "3", "--max_batch_utts", "4", "--max_pad", "0.5", "--quiet", "--device", "cpu"]
    assert (
        cli.main(
            [
                "fit",
                "--csv",
                corpus,
                "-u",
                "wavlm_local",
                "-k",
                tiny_ckpts["wavlm"],
                "--layers",
                "1,3",
                "--n_clusters",
                "6",
                "--batch_size",
                "16",
                "--backend",
                "torch",
                "--out",
                out,
            ]
            + common
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["layers"] == [1, 3]
    for rank in (0, 1):
        cli.main(
            ["dump", "--csv", corpus, "--store", out, "--split", "test", "--nshard", "2", "--rank", str(rank)] + common
        )
    capsys.readouterr()
    cli.main(["merge", "--store", out, "--split", "test", "--nshard", "2"])
    assert json.loads(capsys.readouterr().out)["n_utterances"] == len(DURATIONS)
    proc = subprocess.run(
        [sys.executable, "-m", "upstream_tokens", "info", "--store", out],
        cwd=REPO,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["splits"] == {"test": len(DURATIONS)} and info["meta"]["layers"] == [1, 3]
    assert info["summary"]["dump"]["test"]["clusters_used"][0] <= 6


def test_cli_reports_errors_without_traceback(tmp_path, capsys):
    assert cli.main(["info", "--store", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not a token store" in err and "Traceback" not in err
    assert (
        cli.main(["fit", "--csv", "x.csv", "-u", "wavlm_local", "--out", str(tmp_path / "s"), "--layers", "2-1"]) == 2
    )
    assert "no such data list" in capsys.readouterr().err
