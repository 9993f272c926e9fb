"""egs/mosbench/run.sh --models: one leaderboard row per model (a predictor file, the same file by hf://, and
Distill-MOS by peer:// when the extra is installed) on generated MOS-Bench stand-ins; its cells are the cached
per-set metrics files; a model scored before is not scored again, whatever it is called; another model or
another data list in a results folder is scored again."""

import csv
import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import REPO, load_script
from test_sources import fill_hub_cache

from distilmos.fileio import sha256_file
from distilmos.predictor import load
from distilmos.standins import make_mosbench

RUN = os.path.join(REPO, "egs", "mosbench", "run.sh")
benchmark = load_script("egs/mosbench/local/benchmark.py", "mosbench_benchmark")
predict_bench = load_script("egs/bench/predict_bench.py", "predict_bench")
PEER = __import__("importlib").util.find_spec("distillmos") is not None


def _run(*args, env=None, timeout=600):
    env = dict(env or os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return subprocess.run(["bash", RUN, *args], capture_output=True, text=True, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def board(tmp_path_factory, tiny_ckpts):
    root = tmp_path_factory.mktemp("board")
    make_mosbench(str(root / "corpora"), seed=2, corpora=["singmos", "pstn"], utts=2)
    (root / "roots.yaml").write_text("singmos: corpora/singmos\npstn: corpora/pstn\n")
    model = predict_bench.write_random_predictor(tiny_ckpts["wavlm"], str(root / "tiny.pt"))
    fill_hub_cache(str(root / "hub"), "tester/tiny-mos", {"tiny.pt": model})
    env = dict(os.environ, HF_HUB_CACHE=str(root / "hub"), HF_HUB_OFFLINE="1")
    models = f"tiny={model} mirror=hf://tester/tiny-mos/tiny.pt" + (" peer://distillmos" if PEER else "")
    args = ["--models", models, "--roots", str(root / "roots.yaml"), "--datadir", str(root / "data")]
    args += ["--outdir", str(root / "lb"), "--cachedir", str(root / "cache"), "--device", "cpu"]
    result = _run(*args, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return {"root": root, "model": model, "args": args, "env": env, "result": result}


def _rows(board):
    with open(board["root"] / "lb" / "leaderboard.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_leaderboard_cells_are_the_cached_metrics_files(board):
    root, rows = board["root"], _rows(board)
    manifest = json.load(open(root / "lb" / "sets.json"))
    names = [s["name"] for s in manifest["sets"]]
    assert names == ["singmos/test", "pstn/val"]
    assert [r["model"] for r in rows if r["model"] != "Distill-MOS"] == ["tiny", "mirror"]
    assert len(rows) == 3 if PEER else 2
    markdown = open(root / "lb" / "leaderboard.md").read()
    assert markdown in board["result"].stdout
    md = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in markdown.splitlines()
          if line.startswith("| ") and not line.startswith("| model")}  # fmt: skip
    means = []
    for row in rows:
        folder = root / "cache" / row["identity"]
        record = json.load(open(folder / "scored.json"))
        cells = []
        for entry in manifest["sets"]:
            metrics = json.load(open(folder / f"metrics_{entry['key']}.json"))
            for level in ("utt", "sys"):
                value = row[f"{entry['name']}:{level}_SRCC"]
                assert (value == "") if metrics[f"{level}_SRCC"] is None else float(value) == metrics[f"{level}_SRCC"]
            cells.append(" / ".join(benchmark.fmt(metrics[f"{level}_SRCC"]) for level in ("utt", "sys")))
        # pstn/val has one utterance: no SRCC, so the mean is singmos's
        assert float(row["mean_utt_SRCC"]) == json.load(open(folder / "metrics_singmos_test.json"))["utt_SRCC"]
        timed = record["sets"].values()
        assert float(row["files_per_s"]) == pytest.approx(
            sum(t["n_files"] for t in timed) / sum(t["seconds"] for t in timed)
        )
        reference = row["ref"] if row["ref"].startswith("peer://") else board["model"]
        assert int(row["parameters"]) == load(reference, device="cpu").pipeline.num_parameters()
        assert md[row["model"]][2:4] == cells and md[row["model"]][-2] == f"{float(row['mean_utt_SRCC']):.3f}"
        means.append(float(row["mean_utt_SRCC"]))
    assert means == sorted(means, reverse=True)  # best first
    assert rows[[r["model"] for r in rows].index("tiny")]["identity"] == f"file-{sha256_file(board['model'])[:16]}"
    assert "Scored on: " in markdown and "device cpu" in markdown
    assert "nisqa (not in roots.yaml)" in markdown
    assert os.path.getsize(root / "lb" / "leaderboard.png") > 5000


def test_a_model_scored_before_is_not_scored_again(board):
    # the hf:// copy is the same file: its results were already cached under the file's identity
    stderr = board["result"].stderr
    mirror = stderr[stderr.index("== mirror") :].split("== ", 2)[1]
    assert "singmos/test: scored before; kept" in mirror and "scoring" not in mirror.split("\n", 1)[1]
    cache = board["root"] / "cache"
    stamps = {p: os.path.getmtime(p) for p in cache.rglob("*") if p.is_file()}
    again = _run(*board["args"], "--stage", "3", env=board["env"])  # the data lists and models are as before
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count("scored before; kept") == 2 * (3 if PEER else 2)
    assert "scoring" not in again.stderr.replace("scoring every test set", "")
    assert stamps == {p: os.path.getmtime(p) for p in cache.rglob("*") if p.is_file()}
    with open(board["root"] / "lb" / "leaderboard.csv", newline="") as handle:
        assert list(csv.DictReader(handle)) == _rows(board)


def test_another_model_or_another_list_is_scored_again(board, tiny_ckpts, tmp_path):
    root = board["root"]
    entry = dict(json.load(open(root / "lb" / "sets.json"))["sets"][0])
    entry["csv"] = str(shutil.copy(entry["csv"], tmp_path / "test.csv"))
    manifest = tmp_path / "sets.json"
    manifest.write_text(json.dumps({"sets": [entry], "skipped": []}))
    folder = str(tmp_path / "results")
    first = benchmark.score(board["model"], str(manifest), folder, device="cpu")
    assert first["model"]["sha256"] == sha256_file(board["model"]) and first["parameters"] > 0
    other = predict_bench.write_random_predictor(tiny_ckpts["wavlm"], str(tmp_path / "other.pt"), seed=1)
    second = benchmark.score(other, str(manifest), folder, device="cpu")
    assert second["model"]["sha256"] == sha256_file(other)
    with open(entry["csv"], "a") as handle:  # the same first rows, one more utterance
        handle.write(open(entry["csv"]).read().splitlines()[1].replace(",", "_copy,", 1) + "\n")
    third = benchmark.score(other, str(manifest), folder, device="cpu")
    assert third["sets"][entry["key"]]["n_files"] == second["sets"][entry["key"]]["n_files"] + 1


def test_one_model_or_several_not_both(board):
    result = _run("--model", board["model"], "--models", board["model"], "--roots", "x.yaml")
    assert result.returncode == 1 and "not both" in result.stderr
    with pytest.raises(benchmark.BenchmarkError, match="a second model named 'tiny'"):
        benchmark.resolve_models([board["model"], f"tiny={board['model']}"], str(board["root"] / "x"))
