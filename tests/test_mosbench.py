"""egs/mosbench/run.sh over generated corpora with a tiny predictor file: the table's cells are the
per-set metrics files, skipped corpora are listed, a rerun keeps what is done; the combined table of
several runs; egs/bvcc/run_upstreams.sh --dry_run."""

import csv
import json
import os

import pytest
from conftest import load_script
from recipe_helpers import dry_run, run_recipe

from distilmos.eval.metrics import METRIC_KEYS, compute_metrics
from distilmos.standins import make_mosbench

benchmark = load_script("egs/mosbench/local/benchmark.py", "mosbench_benchmark")
CORPORA = ["singmos", "vmc23", "pstn"]


@pytest.fixture(scope="module")
def bench(tmp_path_factory, tiny_ckpts):
    """A finished benchmark: ``(outdir, roots file, model, first run's output)``."""
    root = tmp_path_factory.mktemp("mosbench")
    make_mosbench(str(root / "corpora"), seed=1, corpora=CORPORA, utts=2)
    roots = root / "roots.yaml"
    # pstn present, tencent given but absent, the others not named: all three kinds of corpus; and a
    # training-only set named, which has nothing to score wherever it is
    roots.write_text(
        "singmos: corpora/singmos\nvmc23: corpora/vmc23\npstn: corpora/pstn\n"
        "tencent: /nonexistent/TencentCorups\nurgent2024_mos: /nonexistent/urgent\n"
    )
    model = load_script("egs/bench/predict_bench.py", "predict_bench").write_random_predictor(
        tiny_ckpts["wavlm"], str(root / "tiny.pt")
    )
    outdir = root / "out"
    where = ["--model", model, "--roots", roots, "--datadir", root / "data", "--outdir", outdir, "--device", "cpu"]
    result = run_recipe("mosbench/run.sh", *where, "--title", "tiny", timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return str(outdir), str(roots), model, result


def _metrics(outdir, key):
    with open(os.path.join(outdir, f"metrics_{key}.json")) as handle:
        return json.load(handle)


def test_table_cells_equal_the_metrics_files(bench):
    outdir, _, _, result = bench
    manifest = json.load(open(os.path.join(outdir, "sets.json")))
    names = [s["name"] for s in manifest["sets"]]
    assert names == ["singmos/test", "pstn/val", "vmc23/track1a", "vmc23/track1b", "vmc23/track2", "vmc23/track3"]
    with open(os.path.join(outdir, "mosbench.csv"), newline="") as handle:
        rows = {r["test_set"]: r for r in csv.DictReader(handle)}
    markdown = open(os.path.join(outdir, "mosbench.md")).read()
    assert markdown in result.stdout  # printed too
    md_rows = {
        line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
        for line in markdown.splitlines()
        if line.startswith("| ") and "test set" not in line
    }
    per_set = {}
    for entry in manifest["sets"]:
        metrics = per_set[entry["name"]] = _metrics(outdir, entry["key"])
        assert set(METRIC_KEYS) <= set(metrics)
        row = rows[entry["name"]]
        assert row["status"] == "evaluated" and int(row["n_utt"]) == metrics["n_utt"]
        for key in METRIC_KEYS:
            if metrics[key] is None:
                assert row[key] == "" and md_rows[entry["name"]][2 + METRIC_KEYS.index(key)] == "n/a"
            else:
                assert float(row[key]) == metrics[key]
                assert md_rows[entry["name"]][2 + METRIC_KEYS.index(key)] == f"{metrics[key]:.3f}"
    for key in METRIC_KEYS:
        values = [m[key] for m in per_set.values() if m[key] is not None]
        assert float(rows["mean"][key]) == pytest.approx(sum(values) / len(values), abs=1e-12)
        assert md_rows["**mean**"][2 + METRIC_KEYS.index(key)] == f"{sum(values) / len(values):.3f}"
    assert os.path.getsize(os.path.join(outdir, "mosbench.png")) > 1000


def test_metrics_are_those_of_the_predictions(bench):
    outdir, _, _, _ = bench
    for key in ("singmos_test", "vmc23_track3"):
        with open(os.path.join(outdir, f"predictions_{key}.csv"), newline="") as handle:
            preds = list(csv.DictReader(handle))
        assert list(preds[0]) == ["sample_id", "system_id", "score", "pred"]
        expected = compute_metrics(
            [float(p["score"]) for p in preds], [float(p["pred"]) for p in preds], [p["system_id"] for p in preds]
        )
        metrics = _metrics(outdir, key)
        assert metrics["n_utt"] == len(preds) and metrics["n_sys"] == expected["n_sys"]
        # predictions are written to 6 decimals, and a random tiny model's predictions lie within about
        # 1e-3 of each other, so only the errors (not the ranks) survive the rounding exactly enough
        for k in ("utt_MSE", "sys_MSE"):
            assert metrics[k] == pytest.approx(expected[k], abs=1e-5)


def test_skipped_corpora_are_listed_with_why(bench):
    outdir, _, _, _ = bench
    markdown = open(os.path.join(outdir, "mosbench.md")).read()
    with open(os.path.join(outdir, "mosbench.csv"), newline="") as handle:
        status = {r["test_set"]: r["status"] for r in csv.DictReader(handle)}
    assert "- tencent: /nonexistent/TencentCorups not found" in markdown
    assert status["tencent"] == "skipped: /nonexistent/TencentCorups not found"
    for name in ("bvcc", "somos", "nisqa", "tmhint_qi", "bc19", "vcc2018"):
        assert f"- {name}: not in roots.yaml" in markdown
        assert status[name] == "skipped: not in roots.yaml"
    assert status["urgent2024_mos"] == "skipped: a training set: it ships no test split"


def test_rerun_keeps_what_is_done(bench, tmp_path):
    outdir, roots, model, _ = bench
    before = {f: os.path.getmtime(os.path.join(outdir, f)) for f in os.listdir(outdir) if f.startswith("metrics_")}
    data = os.path.join(os.path.dirname(outdir), "data")
    where = ["--model", model, "--roots", roots, "--datadir", data, "--outdir", outdir, "--device", "cpu"]
    result = run_recipe("mosbench/run.sh", *where, "--stop_stage", "3", timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "singmos: kept (prepared before)" in result.stderr
    assert "vmc23/track2: scored before; kept" in result.stderr
    assert before == {f: os.path.getmtime(os.path.join(outdir, f)) for f in before}


def test_model_must_be_a_predictor_or_a_checkpoint(tmp_path, bench):
    _, _, model, _ = bench
    assert benchmark.resolve_model(model, str(tmp_path)) == os.path.abspath(model)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(benchmark.ToolkitError, match="junk.pt"):
        benchmark.resolve_model(str(junk), str(tmp_path))
    with pytest.raises(benchmark.BenchmarkError, match="no such model"):
        benchmark.resolve_model(str(tmp_path / "nothing.ckpt"), str(tmp_path))


def test_roots_file_errors(tmp_path):
    with pytest.raises(benchmark.RootsError, match="no such roots file"):
        benchmark.read_roots(str(tmp_path / "none.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("nisqa: x\nmystery: y\n")
    with pytest.raises(benchmark.ToolkitError, match="unknown corpus 'mystery'"):
        benchmark.read_roots(str(bad))
    empty = tmp_path / "empty.yaml"
    empty.write_text("nisqa: /nonexistent\n")
    with pytest.raises(benchmark.RootsError, match="nothing to evaluate"):
        benchmark.prep(str(empty), str(tmp_path / "d"), str(tmp_path / "m.json"))


def test_combined_table_has_one_row_per_run(bench, tmp_path):
    outdir, _, _, _ = bench
    markdown = benchmark.combine([f"first={outdir}", f"second={outdir}"], str(tmp_path / "both"))
    rows = [line for line in markdown.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| upstream | singmos/test | pstn/val | vmc23/track1a")
    assert [r.split("|")[1].strip() for r in rows[1:]] == ["first", "second"]
    srcc = _metrics(outdir, "singmos_test")["utt_SRCC"]
    assert rows[1].split("|")[2].strip() == f"{srcc:.3f}"
    with open(str(tmp_path / "both.csv"), newline="") as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == 2 * 7  # six sets and the mean, per run
    # the recipe's command for it: the same table from LABEL=OUTDIR arguments
    result = run_recipe("mosbench/combine.sh", "--out", "again", f"first={outdir}", f"second={outdir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == markdown and (tmp_path / "again.md").read_text() == markdown
    result = run_recipe("mosbench/combine.sh", "--out", "x")
    assert result.returncode == 1 and "LABEL=OUTDIR" in result.stderr


def test_run_upstreams_dry_run_prints_each_run(tmp_path):
    ckpt = tmp_path / "mine.pt"
    ckpt.write_bytes(b"x")
    upstreams = f"wavlm_base wavlm_local={ckpt} my_pkg.mod:make"
    options = ["--variant", "no_token", "--bvcc_root", "/c/main", "--roots", "/c/roots.yaml", "--device", "cpu"]
    lines = dry_run(
        "bvcc/run_upstreams.sh", "--upstreams", upstreams, *options, "--exproot", tmp_path / "exp", "--total_steps", 50
    )
    assert len(lines) == 7  # train + benchmark per upstream, then the table
    exp = str(tmp_path / "exp")
    expdirs = [
        f"{exp}/no_token_wavlm_base_seed0",
        f"{exp}/no_token_wavlm_local_mine_seed0",
        f"{exp}/no_token_my_pkg.mod_make_seed0",
    ]
    for i, (upstream, ckpt_args) in enumerate(
        [("wavlm_base", []), ("wavlm_local", ["--upstream_ckpt", str(ckpt)]), ("my_pkg.mod:make", [])]
    ):
        train, bench_run = lines[2 * i], lines[2 * i + 1]
        assert train[0].endswith("egs/bvcc/run.sh")
        assert train[train.index("--upstream") + 1] == upstream
        assert (
            train[train.index("--upstream_ckpt") : train.index("--upstream_ckpt") + 2] if ckpt_args else []
        ) == ckpt_args
        assert train[train.index("--variant") + 1] == "no_token"
        assert train[train.index("--expdir") + 1] == expdirs[i]
        assert train[-2:] == ["--total_steps", "50"]  # options it does not know go to run.sh
        assert bench_run[0].endswith("egs/mosbench/run.sh")
        assert bench_run[bench_run.index("--model") + 1] == f"{expdirs[i]}/best-states-val.ckpt"
        assert bench_run[bench_run.index("--roots") + 1] == "/c/roots.yaml"
        assert bench_run[bench_run.index("--outdir") + 1] == f"{expdirs[i]}/mosbench"
    table = lines[-1]  # by the other recipe's documented command, not its local/ script
    assert table[0].endswith("egs/mosbench/combine.sh")
    assert table[1:3] == ["--out", f"{exp}/upstreams_no_token"]
    assert table[3:] == [
        f"wavlm_base={expdirs[0]}/mosbench",
        f"wavlm_local_mine={expdirs[1]}/mosbench",
        f"my_pkg.mod_make={expdirs[2]}/mosbench",
    ]
