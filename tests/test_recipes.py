"""The recipes end to end: egs/bvcc/run.sh through every stage for each variant on the generated corpora
with a tiny upstream, resuming after a kill, sharded tokens under torchrun, the Table 1 and k-sweep
drivers, and the k-sweep plot."""

import csv
import glob
import json
import math
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import pytest
import torch
from conftest import REPO, load_script
from recipe_helpers import dry_run, options_of, recipe_env, run_recipe

RECIPE = os.path.join(REPO, "egs", "bvcc")
RUN = os.path.join(RECIPE, "run.sh")
VARIANTS = ["distilmos", "no_token", "mse_distill", "ssl_mos"]
FIRST = "ssl_mos"  # the quickest: it prepares the data lists the others then share
TABLE_HEADER = "| SSL backbone | Model |"

plot_ksweep = load_script("egs/bvcc/local/plot_ksweep.py", "bvcc_plot_ksweep")
prune_checkpoints = load_script("egs/bvcc/local/prune_checkpoints.py", "bvcc_prune_checkpoints")


def start(*args):
    """Start a recipe script in its own process group; its output goes to a file (a pipe that nobody
    reads while other runs are awaited would stall it)."""
    log = tempfile.TemporaryFile(mode="w+")
    process = subprocess.Popen(
        ["bash", *map(str, args)],
        env=recipe_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    process.log = log
    return process


def finish(process, timeout=600):
    """Wait for a started script; fail with the end of its output when it fails."""
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise
    process.log.seek(0)
    out = process.log.read()
    process.log.close()
    assert process.returncode == 0, out[-4000:]
    return out


def sh(*args, timeout=600):
    """Run a recipe script to its end; its output."""
    return finish(start(*args), timeout)


@pytest.fixture(scope="module")
def recipe(tmp_path_factory, demo_corpus, tiny_ckpts):
    """Options shared by every run here, as a user would share data lists and token stores."""
    work = tmp_path_factory.mktemp("recipe")
    root, _ = demo_corpus
    options = [
        "--bvcc_root",
        os.path.join(root, "bvcc"),
        "--somos_root",
        os.path.join(root, "somos"),
        "--datadir",
        work / "data",
        "--tokendir",
        work / "tokens",
        "--exproot",
        work / "exp",
        "--upstream",
        "wavlm_local",
        "--upstream_ckpt",
        tiny_ckpts["wavlm"],
        "--n_clusters",
        "8",
        "--device",
        "cpu",
        "--total_steps",
        "4",
        "--eval_step",
        "2",
        "--batch_size",
        "4",
        "--num_workers",
        "0",
        "--token_args",
        "--quiet",
        "--overrides",
        "config.downstream_expert.datarc.eval_batch_size=16",
    ]
    return {"work": work, "options": [str(o) for o in options], "ckpt": tiny_ckpts["wavlm"]}


def expdir_of(recipe, variant):
    suffix = "_k8" if variant == "distilmos" else ""
    return recipe["work"] / "exp" / f"{variant}_wavlm_local_wavlm{suffix}_seed0"


@pytest.fixture(scope="module")
def finished_runs(recipe):
    """run.sh stages 1-5 for every variant: ``{variant: output}``. The first run prepares the data lists;
    the others then run side by side (distilmos making the token store), as separate jobs of a user would.
    The first is a quick trial with --eval_step left at its default (1000, beyond its 4 steps): the last
    step still validates and saves, so every later stage has its checkpoint."""
    outputs = {FIRST: sh(RUN, *_without(recipe["options"], "eval_step"), "--variant", FIRST)}
    running = {v: start(RUN, *recipe["options"], "--variant", v) for v in VARIANTS if v != FIRST}
    try:
        outputs.update({v: finish(p) for v, p in running.items()})
    finally:
        for process in running.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
    return outputs


def _without(options, *names):
    """``options`` without the named ``--name value`` pairs."""
    out, words = [], iter(options)
    for word in words:
        if word.lstrip("-") in names:
            next(words)
        else:
            out.append(word)
    return out


def _rows(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("variant", VARIANTS)
def test_run_sh_every_stage(recipe, finished_runs, variant):
    out, expdir = finished_runs[variant], expdir_of(recipe, variant)
    data = recipe["work"] / "data"
    for stage in (1, 2, 3, 4, 5) if variant == "distilmos" else (1, 3, 4, 5):  # only distilmos uses tokens
        assert (expdir / f".done.{stage}").is_file()
    with open(expdir / "info.json") as handle:
        assert json.load(handle)["variant"] == variant
    for split, csv_path in [
        ("val", data / "bvcc" / "val.csv"),
        ("test", data / "bvcc" / "test.csv"),
        ("somos_test", data / "somos" / "test.csv"),
    ]:
        with open(expdir / f"metrics_{split}.json") as handle:
            metrics = json.load(handle)
        predictions = _rows(expdir / f"predictions_{split}.csv")
        assert metrics["n_utt"] == len(predictions) == len(_rows(csv_path))
        assert all(math.isfinite(metrics[k]) for k in ("utt_MSE", "sys_MSE"))
        assert all(math.isfinite(float(r["pred"])) for r in predictions)
    assert TABLE_HEADER in out and (expdir / "table.md").is_file() and (expdir / "scatter_test.png").is_file()
    # the data lists are prepared once and shared; only distilmos needs (and builds) tokens
    assert ("data preparation" in out) == (variant == FIRST)
    assert ("[stage 2]" in out) == (variant == "distilmos")
    if variant == "distilmos":
        store = recipe["work"] / "tokens" / "wavlm_local_wavlm_k8"
        assert all((store / f"{split}.index.json").is_file() for split in ("train", "val", "test"))


def test_run_sh_feature_cache_gives_the_live_run(recipe, finished_runs):
    """--freeze true --feature_cache true: stage 2 caches the hidden states the featurizer reads, training
    and evaluation read them, and the predictions are those of the same frozen run with the upstream."""
    common = [*recipe["options"], "--variant", FIRST, "--freeze", "true", "--stop_stage", "4"]
    live_dir, cached_dir = (
        recipe["work"] / "exp" / "ssl_mos_frozen_live",
        recipe["work"] / "exp" / "ssl_mos_frozen_cached",
    )
    running = start(RUN, *common, "--expdir", live_dir)
    cachedir = recipe["work"] / "cache"
    out = sh(RUN, *common, "--feature_cache", "true", "--cachedir", cachedir, "--expdir", cached_dir)
    finish(running)
    cache = cachedir / "wavlm_local_wavlm_last"  # ssl_mos reads -s last_hidden_state only
    assert "[stage 2] feature cache" in out and "upstream features from the cache" in out
    assert all((cache / f"{split}.index.json").is_file() for split in ("train", "val", "test", "somos_test"))
    for split in ("val", "test", "somos_test"):
        live = {r["sample_id"]: float(r["pred"]) for r in _rows(live_dir / f"predictions_{split}.csv")}
        cached = {r["sample_id"]: float(r["pred"]) for r in _rows(cached_dir / f"predictions_{split}.csv")}
        assert live.keys() == cached.keys() and max(abs(live[k] - cached[k]) for k in live) <= 1e-5
    refused = start(RUN, *recipe["options"], "--variant", "no_token", "--feature_cache", "true", "--stage", "2")
    refused.wait(timeout=60)
    assert refused.returncode == 1 and "add --freeze true" in (refused.log.seek(0) or refused.log.read())


def test_run_sh_moe_mos_every_stage(recipe, finished_runs):
    """MoE-MOS through run.sh (frozen upstream: no -f, no tokens), with its row in the table."""
    out = sh(RUN, *recipe["options"], "--variant", "moe_mos")
    expdir = expdir_of(recipe, "moe_mos")
    assert all((expdir / f".done.{stage}").is_file() for stage in (1, 3, 4, 5))
    assert "[stage 2]" not in out and "Upstream" not in torch.load(
        expdir / "best-states-val.ckpt", map_location="cpu", weights_only=False
    )
    for split in ("val", "test", "somos_test"):
        with open(expdir / f"metrics_{split}.json") as handle:
            metrics = json.load(handle)
        assert math.isfinite(metrics["utt_MSE"]) and "expert_usage_0" in metrics and "gate_entropy" in metrics
    assert any(line.startswith("| wavlm_local | MoE-MOS |") for line in (expdir / "table.md").read_text().splitlines())


def test_quick_trial_keeps_a_best_and_a_last_checkpoint(recipe, finished_runs):
    """The first run: --total_steps 4 with --eval_step left unset, so the config's 1000 applies (4 is no
    multiple of it): the last step still validates and saves, and stage 4 evaluates that best checkpoint."""
    expdir = expdir_of(recipe, FIRST)
    last = torch.load(expdir / "states-4.ckpt", map_location="cpu", weights_only=False)
    assert last["Step"] == 4 and last["Config"]["runner"]["eval_step"] == 1000
    assert torch.load(expdir / "best-states-val.ckpt", map_location="cpu", weights_only=False)["Step"] == 4
    logged = [json.loads(line) for line in (expdir / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if r["split"] == "val"] == [4]
    assert all(
        (expdir / f"metrics_{split}.json").is_file() and (expdir / f"predictions_{split}.csv").is_file()
        for split in ("val", "test", "somos_test")
    )


def test_run_sh_salf_mos_every_stage_from_a_feature_cache(recipe, finished_runs):
    """SALF-MOS through run.sh: frozen (no -f), its registered -s last_hidden_state, and with
    --feature_cache true stage 2 caches that one layer, which training and evaluation read."""
    out = sh(
        RUN,
        *recipe["options"],
        "--variant",
        "salf_mos",
        "--feature_cache",
        "true",
        "--cachedir",
        recipe["work"] / "cache",
    )
    expdir, cache = expdir_of(recipe, "salf_mos"), recipe["work"] / "cache" / "wavlm_local_wavlm_last"
    assert all((expdir / f".done.{stage}").is_file() for stage in (1, 2, 3, 4, 5))
    assert "[stage 2] feature cache" in out and "(layers last)" in out and "upstream features from the cache" in out
    assert all((cache / f"{split}.index.json").is_file() for split in ("train", "val", "test", "somos_test"))
    best = torch.load(expdir / "best-states-val.ckpt", map_location="cpu", weights_only=False)
    assert best["Args"].upstream_feature_selection == "last_hidden_state" and "Upstream" not in best
    for split in ("val", "test", "somos_test"):
        with open(expdir / f"metrics_{split}.json") as handle:
            assert math.isfinite(json.load(handle)["utt_MSE"])
    assert any(line.startswith("| wavlm_local | SALF-MOS |") for line in (expdir / "table.md").read_text().splitlines())


def test_run_table1_collects_finished_runs(recipe, finished_runs):
    """Same options as the runs above: every run.sh call finds its stages done, then the table is made."""
    options = _without(recipe["options"], "upstream", "upstream_ckpt")
    out = sh(os.path.join(RECIPE, "run_table1.sh"), *options, "--upstreams", f"wavlm_local={recipe['ckpt']}")
    assert "[stage" not in out  # nothing redone
    table = (recipe["work"] / "exp" / "table1.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| wavlm_local |")]
    assert len(rows) == 4
    csv_rows = _rows(recipe["work"] / "exp" / "table1.csv")
    assert {r["model"] for r in csv_rows} == {"SSL-MOS", "DistilMOS (ours)", "w/o token prediction", "MSE distillation"}


def test_run_ksweep_plots_finished_runs(recipe, finished_runs):
    options = _without(recipe["options"], "n_clusters")
    out = sh(
        os.path.join(RECIPE, "run_ksweep.sh"),
        *options,
        "--ks",
        "8",
        "--baseline_variants",
        "ssl_mos no_token mse_distill",
    )
    assert "[stage" not in out
    rows = _rows(recipe["work"] / "exp" / "ksweep.csv")
    assert [r["model"] for r in rows] == ["DistilMOS (ours)", "SSL-MOS", "w/o token prediction", "MSE distillation"]
    with open(expdir_of(recipe, "distilmos") / "metrics_somos_test.json") as handle:
        assert float(rows[0]["somos_utt_SRCC"]) == pytest.approx(json.load(handle)["utt_SRCC"])
    assert (recipe["work"] / "exp" / "ksweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_cca_analyses_every_variant_and_a_random_model(recipe, finished_runs):
    out = sh(
        os.path.join(RECIPE, "run_cca.sh"),
        "--upstream",
        "wavlm_local",
        "--upstream_ckpt",
        recipe["ckpt"],
        "--n_clusters",
        "8",
        "--device",
        "cpu",
        "--exproot",
        recipe["work"] / "exp",
        "--datadir",
        recipe["work"] / "data",
        "--split",
        "train",
    )  # the generated test split is too small
    assert "DistilMOS" in out
    prefix = recipe["work"] / "exp" / "cca_wavlm_local_wavlm_seed0"
    rows = _rows(f"{prefix}.csv")
    models = list(dict.fromkeys(r["model"] for r in rows))
    assert models == ["SSL-MOS", "w/o token prediction", "MSE distillation", "DistilMOS (ours)", "random init"]
    assert [int(r["layer"]) for r in rows] == [1, 2, 3] * 5  # every transformer layer of the tiny upstream
    assert all(0 <= float(r["pwcca"]) <= 1 for r in rows)
    assert {r["expdir"] for r in rows if r["model"] == "DistilMOS (ours)"} == {str(expdir_of(recipe, "distilmos"))}
    assert open(f"{prefix}.png", "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def _mtimes(paths):
    return {str(p): os.stat(p).st_mtime_ns for p in paths}


def test_killed_run_resumes_from_its_last_checkpoint(recipe, tmp_path):
    expdir = tmp_path / "exp"
    # a checkpoint every 2 steps, all kept, a log line every step
    options = [
        *recipe["options"],
        "--variant",
        "distilmos",
        "--expdir",
        str(expdir),
        "--stop_stage",
        "3",
        "--total_steps",
        "12",
        "--eval_step",
        "6",
        "--overrides",
        "config.runner.save_step=2,,config.runner.max_keep=100,,config.runner.log_step=1",
    ]
    first = subprocess.Popen(
        ["bash", RUN, *options],
        env=recipe_env(),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 300
        while not any(prune_checkpoints.is_whole(p) for p in glob.glob(str(expdir / "states-*.ckpt"))):
            assert first.poll() is None, "run.sh ended before its first checkpoint"
            assert time.time() < deadline
            time.sleep(0.05)
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the whole group: bash and the training process
        first.wait()
    assert not (expdir / ".done.3").exists() and not glob.glob(str(expdir / "states-12.ckpt"))
    data, store = recipe["work"] / "data", recipe["work"] / "tokens" / "wavlm_local_wavlm_k8"
    kept = [expdir / ".done.1", expdir / ".done.2", *data.glob("*/*.csv"), *store.glob("*")]
    before = _mtimes(kept)
    with open(expdir / "log.jsonl") as handle:
        n_logged = len(handle.readlines())

    out = sh(RUN, *options)
    assert "[stage 1]" not in out and "[stage 2]" not in out and _mtimes(kept) == before
    resumed_from = int(re.search(r"resuming from \S*states-(\d+)\.ckpt", out).group(1))
    assert resumed_from >= 2
    with open(expdir / "log.jsonl") as handle:
        new = [json.loads(line) for line in handle.readlines()[n_logged:]]
    steps = [r["step"] for r in new if r["split"] == "train"]
    assert steps == list(range(resumed_from + 1, 13))  # continued, not started again at step 1
    final = torch.load(expdir / "states-12.ckpt", map_location="cpu", weights_only=False)
    assert final["Step"] == 12 and final["Scheduler"]["last_epoch"] == 12
    assert (expdir / ".done.3").is_file()


def test_half_written_checkpoint_is_removed_before_resuming(tmp_path):
    torch.save({"Step": 2, "w": torch.zeros(1000)}, tmp_path / "states-2.ckpt")
    torch.save({"Step": 4, "w": torch.zeros(1000)}, tmp_path / "states-4.ckpt")
    whole = (tmp_path / "states-4.ckpt").read_bytes()
    (tmp_path / "states-4.ckpt").write_bytes(whole[: len(whole) // 2])  # killed while saving
    (tmp_path / "best-states-val.ckpt").write_bytes(whole[:100])
    removed, newest = prune_checkpoints.prune(str(tmp_path))
    assert sorted(os.path.basename(p) for p in removed) == ["best-states-val.ckpt", "states-4.ckpt"]
    assert newest == str(tmp_path / "states-2.ckpt")
    assert torch.load(newest, weights_only=True)["Step"] == 2


def test_sharded_tokens_under_torchrun_equal_one_process(recipe, finished_runs, tmp_path):
    """--ngpu 2 on CPU: two torchrun ranks fit shards and dump every split; the merged splits equal a
    one-process dump of the same centroids byte for byte."""
    from upstream_tokens.dump import dump_split

    tokendir = tmp_path / "tokens"
    sh(
        RUN,
        *recipe["options"],
        "--variant",
        "distilmos",
        "--expdir",
        tmp_path / "exp",
        "--tokendir",
        tokendir,
        "--ngpu",
        "2",
        "--stop_stage",
        "2",
    )
    store = tokendir / "wavlm_local_wavlm_k8"
    with open(store / "meta.json") as handle:
        assert json.load(handle)["fit_shards"] == 2  # the centroids came from the two ranks' shards
    single = tmp_path / "single"
    shutil.copytree(store, single)
    for split in ("train", "val", "test"):
        csv_path = str(recipe["work"] / "data" / "bvcc" / f"{split}.csv")
        dump_split(csv_path, str(single), split, overwrite=True, progress=False)
        assert (single / f"{split}.npy").read_bytes() == (store / f"{split}.npy").read_bytes()
        assert (single / f"{split}.index.json").read_bytes() == (store / f"{split}.index.json").read_bytes()


def test_ddp_training_under_torchrun(recipe, finished_runs, tmp_path):
    """Two CPU processes train, stop after total_steps on every rank, and evaluate."""
    expdir = tmp_path / "exp"
    sh(RUN, *recipe["options"], "--variant", "no_token", "--expdir", expdir, "--ngpu", "2", "--stop_stage", "4")
    ckpt = torch.load(expdir / "states-4.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["WorldSize"] == 2 and ckpt["Step"] == 4
    assert (expdir / "metrics_test.json").is_file()


# ---- the drivers, without running anything ----------------------------------------------------------


def test_run_table1_dry_run_lists_every_run(tmp_path):
    commands = dry_run(
        "bvcc/run_table1.sh", "--bvcc_root", "/c/bvcc", "--seeds", "0 1", "--exproot", tmp_path, "--batch_size", "16"
    )
    runs, table = commands[:-1], commands[-1]
    assert len(runs) == 32 and all(c[0] == RUN for c in runs)
    flags = [options_of(c) for c in runs]
    combos = {(f["--upstream"], f["--variant"], f["--seed"]) for f in flags}
    assert combos == {
        (u, v, s)
        for u in ("wav2vec2_base_960", "wavlm_base", "wavlm_base_plus", "wavlm_large")
        for v in VARIANTS
        for s in ("0", "1")
    }
    assert all(
        f["--batch_size"] == "16" and f["--n_clusters"] == "200" and f["--bvcc_root"] == "/c/bvcc" for f in flags
    )  # pass-through and shared options reach every run
    expdirs = [f["--expdir"] for f in flags]
    assert len(set(expdirs)) == 32 and all(os.path.dirname(e) == str(tmp_path) for e in expdirs)
    assert table[1].endswith("local/make_table.py") and table[table.index("--expdirs") + 1 :][:32] == expdirs
    assert table[-1] == str(tmp_path / "table1")


def test_run_ksweep_dry_run_shares_the_table1_run(tmp_path):
    commands = dry_run("bvcc/run_ksweep.sh", "--exproot", tmp_path, "--seeds", "0")
    runs = [options_of(c) for c in commands[:-1]]
    assert [f["--n_clusters"] for f in runs] == ["50", "100", "150", "200", "250", "300"]
    assert all(f["--variant"] == "distilmos" and f["--upstream"] == "wavlm_base" for f in runs)
    table1 = [options_of(c) for c in dry_run("bvcc/run_table1.sh", "--exproot", tmp_path)[:-1]]
    k200 = next(f["--expdir"] for f in table1 if f["--upstream"] == "wavlm_base" and f["--variant"] == "distilmos")
    assert k200 == runs[3]["--expdir"]  # the k=200 point is not trained twice
    assert commands[-1][1].endswith("local/plot_ksweep.py") and commands[-1][-1] == str(tmp_path / "ksweep")


# ---- the k-sweep plot ---------------------------------------------------------------------------------


def _fake_run(path, variant, k, seed, test_utt, test_sys, somos_utt=None, upstream="wavlm_base"):
    path.mkdir(parents=True)
    (path / "info.json").write_text(
        json.dumps({"upstream": upstream, "upstream_ckpt": "", "variant": variant, "n_clusters": k, "seed": seed})
    )
    base = {"utt_MSE": 0.2, "utt_LCC": 0.8, "utt_KTAU": 0.6, "sys_MSE": 0.1, "sys_LCC": 0.9, "sys_KTAU": 0.7}
    (path / "metrics_test.json").write_text(json.dumps(dict(base, utt_SRCC=test_utt, sys_SRCC=test_sys)))
    if somos_utt is not None:
        (path / "metrics_somos_test.json").write_text(json.dumps(dict(base, utt_SRCC=somos_utt, sys_SRCC=None)))
    return str(path)


def test_plot_ksweep_averages_seeds_per_k(tmp_path):
    sweep = [
        _fake_run(tmp_path / "a", "distilmos", 100, 0, 0.86, 0.92, 0.36),
        _fake_run(tmp_path / "b", "distilmos", 50, 0, 0.88, 0.93, 0.38),
        _fake_run(tmp_path / "c", "distilmos", 50, 1, 0.90, 0.95),  # no SOMOS metrics
        _fake_run(tmp_path / "d", "distilmos", 100, 1, 0.84, 0.90, 0.40),
    ]
    baselines = [_fake_run(tmp_path / "e", "ssl_mos", 200, 0, 0.87, 0.91, 0.33)]
    plot_ksweep.main(["--expdirs", *sweep, "--baselines", *baselines, "--out", str(tmp_path / "out" / "ksweep")])
    assert (tmp_path / "out" / "ksweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = _rows(tmp_path / "out" / "ksweep.csv")
    assert [(r["model"], r["k"], r["n_runs"]) for r in rows] == [
        ("DistilMOS (ours)", "50", "2"),
        ("DistilMOS (ours)", "100", "2"),
        ("SSL-MOS", "", "1"),
    ]
    k50, k100, ssl = rows
    assert float(k50["bvcc_utt_SRCC"]) == pytest.approx(0.89)
    assert float(k50["bvcc_utt_SRCC_std"]) == pytest.approx(0.0141421, abs=1e-6)
    assert float(k50["bvcc_sys_SRCC"]) == pytest.approx(0.94)
    assert float(k50["somos_utt_SRCC"]) == pytest.approx(0.38) and k50["somos_utt_SRCC_std"] == ""
    assert float(k100["somos_utt_SRCC"]) == pytest.approx(0.38) and float(k100["bvcc_utt_SRCC"]) == pytest.approx(0.85)
    assert float(ssl["somos_utt_SRCC"]) == pytest.approx(0.33)


def test_plot_ksweep_refuses_mixed_runs(tmp_path):
    a = _fake_run(tmp_path / "a", "distilmos", 50, 0, 0.8, 0.9)
    with pytest.raises(plot_ksweep.SweepError, match="variant 'no_token'"):
        plot_ksweep.collect([a, _fake_run(tmp_path / "b", "no_token", 50, 0, 0.8, 0.9)])
    with pytest.raises(plot_ksweep.SweepError, match="mixes upstreams"):
        plot_ksweep.collect([a, _fake_run(tmp_path / "c", "distilmos", 100, 0, 0.8, 0.9, upstream="wavlm_large")])
    with pytest.raises(plot_ksweep.SweepError, match="no info.json"):
        plot_ksweep.collect([str(tmp_path)])


@pytest.mark.parametrize(
    "variant,why", [("no_token", "fine-tunes its upstream"), ("mse_distill", "frozen teacher on the waveforms")]
)
def test_run_sh_refuses_a_feature_cache_it_cannot_use_before_any_stage(tmp_path, variant, why):
    """A fine-tuned run, or one whose teacher reads the waveforms (the registry's waveforms flag), is refused
    before stage 1 rather than after a cache dump."""
    freeze = ["--freeze", "true"] if variant == "mse_distill" else []
    where = ["--bvcc_root", tmp_path / "nowhere", "--datadir", tmp_path / "data", "--expdir", tmp_path / "exp"]
    result = run_recipe("bvcc/run.sh", "--variant", variant, *freeze, "--feature_cache", "true", *where)
    assert result.returncode == 1 and why in result.stderr and "[stage" not in result.stdout
    assert not (tmp_path / "data").exists()


def test_run_sh_random_split_has_its_own_lists_and_experiment_folder(demo_corpus, tmp_path):
    """--split random811: stage 1 writes its lists beside the official ones (never over them), stamped with the
    split; an experiment folder of the official split is refused for it, before any stage."""
    root, _ = demo_corpus
    common = [
        "--bvcc_root",
        os.path.join(root, "bvcc"),
        "--datadir",
        str(tmp_path / "data"),
        "--exproot",
        str(tmp_path / "exp"),
        "--variant",
        "salf_mos",
        "--upstream",
        "lfcc",
        "--stop_stage",
        "1",
    ]

    def run(*args):
        return subprocess.run(
            ["bash", RUN, *common, *args], env=recipe_env(), capture_output=True, text=True, timeout=300
        )

    official, random = run(), run("--split", "random811", "--split_seed", "3")
    assert official.returncode == 0 and random.returncode == 0, official.stderr + random.stderr
    lists = {name: read_lists(tmp_path / "data" / name) for name in ("bvcc", "bvcc_random811_seed3")}
    assert lists["bvcc"] != lists["bvcc_random811_seed3"]
    assert sorted(sum(lists["bvcc"].values(), [])) == sorted(sum(lists["bvcc_random811_seed3"].values(), []))
    assert "split=random811 split_seed=3" in (tmp_path / "data" / ".prepared_random811_seed3").read_text()
    assert (
        tmp_path / "exp" / "salf_mos_lfcc_seed0_random811_seed3" / ".split"
    ).read_text().strip() == "split=random811 split_seed=3"
    again = run("--split", "random811", "--split_seed", "3", "--bvcc_root", "", "--seed", "1")  # a new expdir
    assert again.returncode == 0 and "already prepared" in again.stdout
    mixed = run("--split", "random811", "--expdir", str(tmp_path / "exp" / "salf_mos_lfcc_seed0"))
    assert mixed.returncode == 1 and "holds a run on the BVCC lists of split=official" in mixed.stderr
    assert "[stage" not in mixed.stdout


def read_lists(folder):
    """``{split: [sample ids]}`` of a data list folder."""
    return {
        split: [row["sample_id"] for row in csv.DictReader(open(folder / f"{split}.csv"))]
        for split in ("train", "val", "test")
    }
