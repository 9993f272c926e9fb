import json

import pytest
from conftest import load_script

table = load_script("egs/bvcc/local/make_table.py", "bvcc_make_table")


def test_paper_numbers_are_held_exactly():
    paper = table.PAPER_TABLE1
    assert len(paper) == 16
    assert paper[("WavLM Large", "DistilMOS (ours)")]["somos_utt_SRCC"] == 0.387
    assert paper[("Wav2Vec2 Base", "SSL-MOS")]["bvcc_utt_MSE"] == 0.472
    assert paper[("WavLM Base+", "MSE distillation")]["bvcc_sys_KTAU"] == 0.773
    assert paper[("WavLM Base", "w/o token prediction")]["somos_utt_MSE"] == 0.796


def _run(path, upstream, variant, utt_srcc):
    path.mkdir()
    (path / "info.json").write_text(json.dumps({"upstream": upstream, "variant": variant, "seed": 0}))
    metrics = {
        k: 0.5 for k in ("utt_MSE", "utt_LCC", "utt_SRCC", "utt_KTAU", "sys_MSE", "sys_LCC", "sys_SRCC", "sys_KTAU")
    }
    metrics["utt_SRCC"] = utt_srcc
    (path / "metrics_test.json").write_text(json.dumps(metrics))
    return str(path)


def test_seeds_averaged_and_differences_computed(tmp_path):
    runs = [
        _run(tmp_path / "a", "wavlm_base", "distilmos", 0.88),
        _run(tmp_path / "b", "wavlm_base", "distilmos", 0.90),
    ]
    rows = {(r["model"], r["metric"]): r for r in table.rows(table.collect(runs))}
    cell = rows[("DistilMOS (ours)", "bvcc_utt_SRCC")]
    assert cell["ours"] == pytest.approx(0.89) and cell["n_runs"] == 2
    assert cell["paper"] == 0.884 and cell["diff"] == pytest.approx(0.89 - 0.884)
    assert rows[("DistilMOS (ours)", "somos_utt_SRCC")]["ours"] is None  # no SOMOS metrics written
    table.main(["--expdirs", *runs, "--out", str(tmp_path / "t1")])
    assert "0.890±0.014 (0.884, +0.006)" in (tmp_path / "t1.md").read_text()
