"""Smoke tests of the study scripts in experiments/studies/ on tiny settings (a few seconds)."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

STUDIES = Path(__file__).resolve().parents[1] / "experiments" / "studies"
sys.path.insert(0, str(STUDIES))

accelerator = importlib.import_module("accelerator")
sparse_attention = importlib.import_module("sparse_attention")
scaling = importlib.import_module("scaling")
decoder = importlib.import_module("decoder")


def test_accelerator_onchip_units_speed_up_and_matmuls_dominate_again():
    cfg = accelerator.Config(seqs=(64,), bandwidths=(16, 2))
    res = accelerator.run(cfg)
    assert [(r["seq"], r["dram_bytes_per_cycle"]) for r in res["buffers"]] == [(64, 16), (64, 2)]
    for r in res["buffers"]:
        assert r["matmuls"] == 12 * 8   # per layer: Q, K, V, O, FFN1, FFN2, Q.K^T, scores.V
        assert r["matmul_cycles_256k_64k"] > 0 and r["matmul_cycles_64k_256k"] > 0
    (nl,) = res["nonlinear"]
    assert nl["speedup_onchip"] > 1
    assert nl["onchip"]["matmul_share"] > nl["host"]["matmul_share"]
    assert nl["host"]["class_share"]["non-linear"] > nl["onchip"]["class_share"]["non-linear"]
    assert "speedup" in accelerator.report(res)


def test_accelerator_main_writes_json_and_png_atomically(tmp_path):
    assert accelerator.main(["--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "accelerator.json").read_text())
    assert data["command"].startswith("python") and data["machine"]["cpu_count"]
    assert (tmp_path / "accelerator.png").stat().st_size > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["accelerator.json", "accelerator.png"]


def test_sparse_attention_cuts_attention_cycles_and_raises_the_linear_share(tmp_path):
    cfg = sparse_attention.Config(sparsities=(0.9,), patterns=("global-local",),
                                  mask=str(tmp_path / "absent.npy"))
    res = sparse_attention.run(cfg)
    assert list(res["cases"]) == ["dense", "global-local 90%"]
    dense, sparse = res["cases"]["dense"], res["cases"]["global-local 90%"]
    assert sparse["attention_cycles"] < dense["attention_cycles"]
    assert sparse["projection_share"] > dense["projection_share"]
    assert sparse["sparse_engine_cycles_per_layer"] > 0
    assert dense["dense_engine_share"] is None and 0 < sparse["dense_engine_share"] < 1
    assert len(sparse["per_layer"]["dense_engine_cycles"]) == 12
    assert res["notes"]          # the absent mask file is reported, not an error


def test_sparse_attention_real_masks_vary_per_layer():
    if not Path(sparse_attention.Config().mask).is_file():
        pytest.skip("ViTCoD masks not in ../shared/data")
    res = sparse_attention.run(sparse_attention.Config(sparsities=(0.95,),
                                                       patterns=("global-local",)))
    per_layer = res["cases"]["real masks (per layer)"]["per_layer"]
    assert len(set(per_layer["dense_columns"])) > 1
    assert 0.9 < 1 - res["cases"]["real masks (layer mean)"]["kept_fraction"] < 1


def test_scaling_act_to_act_share_grows_and_generation_has_low_intensity():
    res = scaling.run(scaling.Config(seqs=(64, 256)))
    bert = [p for p in res["points"] if p["model"] == "bert-base"]
    gpt2 = [p for p in res["points"] if p["model"] == "gpt2"]
    share = [p["classes"]["act-to-act matmul"]["flops_share"] for p in bert]
    assert share[1] > share[0]
    assert all(g["intensity"] < b["intensity"] / 10 for g, b in zip(gpt2, bert))
    for p in res["points"]:
        assert sum(p["latency_share"].values()) == pytest.approx(1.0)


def test_decoder_steps_add_up_to_the_decode_phase():
    cfg = decoder.Config(prompt=16, gen=4, bandwidths=(2, 16), dataflows=("ws",))
    res = decoder.run(cfg)
    assert len(res["steps"]) == 4
    assert [s["context"] for s in res["steps"]] == [17, 18, 19, 20]
    assert sum(s["latency_ms"] for s in res["steps"]) == pytest.approx(res["decode"]["latency_ms"])
    assert res["prefill"]["latency_ms"] + res["decode"]["latency_ms"] == pytest.approx(
        res["total_latency_ms"])
    assert res["decode"]["intensity"] < res["prefill"]["intensity"]
    low, high = res["bandwidth_sweep"]
    assert low["decode_ms_per_token"] >= high["decode_ms_per_token"]
