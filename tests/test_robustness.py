"""Res-Bench's robustness metrics (biores_plugin/report/metrics.py) on known numbers."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from biores_plugin.report.collect import Cell
from biores_plugin.report.metrics import ace, critical_resolution, rce, robustness, spearman, write_json


def _cells(acc, stderr=None, tokens=None, run="m", dataset="d"):
    levels = ["224", "448", "896", "native"][-len(acc) :]
    return [
        Cell(run, None, dataset, lvl, a, (stderr or [None] * len(acc))[i], 100, (tokens or [None] * len(acc))[i])
        for i, (lvl, a) in enumerate(zip(levels, acc))
    ]


def test_ace_rce_spearman_and_critical_resolution_on_a_known_sweep():
    [row] = robustness(_cells([0.50, 0.70, 0.65, 0.72], stderr=[0.05, 0.05, 0.05, 0.04], tokens=[64, 256, 1024, 2048]))
    assert row.levels == ["224", "448", "896", "native"]
    assert row.ace == pytest.approx(0.20 + 0.05 + 0.07)  # |A(i+1) - A(i)| over the sorted levels
    assert row.rce == pytest.approx(0.32 / ((0.50 + 0.70 + 0.65 + 0.72) / 4))
    assert row.spearman_rho == pytest.approx(0.8)  # ranks 1,3,2,4 against 1,2,3,4
    assert row.critical_resolution == "448"  # |0.70 - 0.72| <= 0.04; 224 is 0.22 away
    assert row.accuracy_per_visual_token == pytest.approx([0.50 / 64, 0.70 / 256, 0.65 / 1024, 0.72 / 2048])


def test_edge_cases():
    assert spearman([0, 1, 2], [0.5, 0.5, 0.5]) is None  # constant accuracy: undefined
    assert rce([0.0, 0.0]) is None and ace([0.3]) == 0.0
    assert critical_resolution(["224", "448"], [0.5, 0.6], [0.1, 0.1]) is None  # no native level
    assert critical_resolution(["224", "native"], [0.6, 0.6], [None, None]) == "224"  # no stderr: equal only
    assert robustness(_cells([0.5])) == []  # one level: nothing to say
    assert [r.dataset for r in robustness(_cells([0.1, 0.2], dataset="a") + _cells([0.3, 0.4], dataset="b"))] == [
        "a",
        "b",
    ]


@settings(deadline=None, max_examples=60)
@given(st.lists(st.floats(0, 1, allow_nan=False), min_size=3, max_size=12))
def test_spearman_matches_scipy(accuracy):
    from scipy.stats import spearmanr

    ours = spearman(list(range(len(accuracy))), accuracy)
    if len(set(accuracy)) == 1:
        assert ours is None
    else:
        assert ours == pytest.approx(spearmanr(range(len(accuracy)), accuracy).statistic, abs=1e-9)


def test_json_is_citable(tmp_path):
    rows = robustness(_cells([0.4, 0.6]))
    payload = json.loads(write_json(rows, tmp_path / "robustness.json", {"biores_x_224": [3]}).read_text())
    assert payload["schema"] == "biores.robustness/1" and "2510.16926" in payload["source"]
    assert set(payload["definitions"]) >= {
        "spearman_rho",
        "ace",
        "rce",
        "critical_resolution",
        "accuracy_per_visual_token",
    }
    assert payload["rows"][0]["ace"] == pytest.approx(0.2) and payload["skipped_image_ids"] == {"biores_x_224": [3]}


def test_collect_reads_a_wrapped_tasks_own_metric_in_percent(tmp_path):
    from biores_plugin.report import collect

    configs = {
        f"biores_v_{r}": {"metadata": [{"version": 0.0}, {"biores": {"primary_metric": "v_acc"}}]}
        for r in ("224", "native")
    }
    results = {
        "results": {
            "biores_v_224": {"v_acc,none": 50.0, "v_acc_stderr,none": "N/A"},
            "biores_v_native": {"v_acc,none": 75.0},
        },
        "configs": configs,
        "n-samples": {"biores_v_224": {"effective": 4}, "biores_v_native": {"effective": 4}},
    }
    (tmp_path / "x_results.json").write_text(json.dumps(results))
    samples = [
        {"doc_id": i, "v_acc": {"score": 100.0}, "biores": {"score": float(i % 2), "eff_size": [224, 168]}}
        for i in range(4)
    ]
    (tmp_path / "x_samples_biores_v_224.jsonl").write_text("\n".join(json.dumps(s) for s in samples))
    cells = {c.resolution: c for c in collect([tmp_path])}
    assert cells["224"].accuracy == 0.5 and cells["native"].accuracy == 0.75  # percent -> fraction
    assert cells["224"].n == 4 and cells["224"].stderr == pytest.approx(0.2887, abs=1e-3)  # from the biores scores
    assert cells["224"].visual_tokens is not None and cells["224"].tokens_estimated


def test_curve_axis_names_what_the_levels_measure():
    from biores_plugin.report.plots import axis_unit

    assert axis_unit(["max_pixels=50176", "max_pixels=200704"]) == "model's pixel budget, max_pixels"
    assert axis_unit(["224", "448", "native"]) == "longest side, px"
    assert axis_unit(["2 µm/px", "1 µm/px", "native"]) == "pixel size, µm/px"
    assert axis_unit(["224", "max_pixels=50176"]) == "longest side, px / max_pixels"
