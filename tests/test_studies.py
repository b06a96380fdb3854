"""Smoke tests of the study scripts in experiments/studies/<study>/ on tiny settings (a few
seconds). The real ViTCoD masks come from ../shared/data (CI has it): missing, they fail."""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path

import pytest

from costmodel.simulate import SIMULATOR_VERSION
from nas.core.provenance import command_line

STUDIES = Path(__file__).resolve().parents[1] / "experiments" / "studies"
sys.path[:0] = [str(STUDIES / name) for name in ("accelerator", "sparse_attention", "scaling",
                                                  "decoder", "cosearch")] + [str(STUDIES)]

accelerator = importlib.import_module("accelerator")
sparse_attention = importlib.import_module("sparse_attention")
scaling = importlib.import_module("scaling")
decoder = importlib.import_module("decoder")


def test_accelerator_onchip_units_speed_up_and_matmuls_dominate_again():
    cfg = accelerator.Config(seqs=(64,), bandwidths=(16, 2))
    res = accelerator.run(cfg)
    assert [(r["seq"], r["dram_bytes_per_cycle"]) for r in res["buffers"]] == [(64, 16), (64, 2)]
    wide, narrow = res["buffers"]
    for r in (wide, narrow):
        assert r["matmuls"] == 12 * 8   # per layer: Q, K, V, O, FFN1, FFN2, Q.K^T, scores.V
        assert r["dram_reduction"] > 0  # the larger accumulator always saves DRAM traffic
    # the split matters for latency only where traffic does: on the narrow bus, where every
    # matmul is memory-bound, and hardly at all on Gemmini's 16 B/cycle, where none is
    assert narrow["memory_bound_matmuls_256k_64k"] == 12 * 8
    assert wide["memory_bound_matmuls_256k_64k"] == 0
    assert narrow["latency_reduction"] > 10 * wide["latency_reduction"]
    (nl,) = res["nonlinear"]
    assert nl["speedup_onchip"] > 1
    assert nl["onchip"]["matmul_share"] > nl["host"]["matmul_share"]
    assert nl["host"]["class_share"]["non-linear"] > nl["onchip"]["class_share"]["non-linear"]
    assert "speedup" in accelerator.report(res)


def test_accelerator_runs_each_mapping_and_shows_the_rebalance_mechanism():
    cfg = accelerator.Config(seqs=(512,), bandwidths=(16,), mappings=("scalesim", "gemmini"))
    res = accelerator.run(cfg)
    assert list(res["mappings"]) == ["scalesim", "gemmini"]
    assert res["buffers"] == res["mappings"]["scalesim"]["buffers"]   # top level: first mode
    change = res["survey_3_4_matmul_latency_change_pct"]
    assert change["gemmini"] <= -25 < change["scalesim"]        # survey Sec. 3.4.3: -36%
    mech = {r["op"]: r for r in res["mappings"]["gemmini"]["mechanism"]}
    assert list(mech) == ["q_proj", "k_proj", "v_proj", "o_proj", "qk", "av", "ffn1", "ffn2"]
    ffn1 = mech["ffn1"]
    assert ffn1["256k_64k"]["tile_mkn"] == [80, 768, 80]
    assert ffn1["64k_256k"]["tile_mkn"] == [176, 80, 176]
    assert ffn1["64k_256k"]["a_dram_reads"] < ffn1["256k_64k"]["a_dram_reads"]
    assert ffn1["64k_256k"]["dram_bytes"] < ffn1["256k_64k"]["dram_bytes"]
    assert "== mapping gemmini" in accelerator.report(res)


@pytest.mark.figures
def test_accelerator_main_writes_json_and_png_atomically(tmp_path, drawn):
    assert accelerator.main(["--out", str(tmp_path), "--mapping", "scalesim",
                             "--mapping", "gemmini"]) == 0
    data = json.loads((tmp_path / "accelerator.json").read_text())
    assert list(data["mappings"]) == ["scalesim", "gemmini"]
    assert data["provenance"]["simulator_version"] == SIMULATOR_VERSION
    assert data["provenance"]["machine"]["cores"] == os.cpu_count()
    assert data["provenance"]["command"] == command_line()      # this process's command line
    drawn(tmp_path / "accelerator.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["accelerator.json", "accelerator.png"]


def test_sparse_attention_cuts_attention_cycles_and_raises_the_linear_share(tmp_path):
    cfg = sparse_attention.Config(sparsities=(0.9,), patterns=("global-local",),
                                  mask=str(tmp_path / "absent.npy"))
    res = sparse_attention.run(cfg)
    assert list(res["hardware"]) == ["vitcod", "vitcod-sim"]
    for hw in res["hardware"].values():
        assert list(hw["cases"]) == ["dense", "global-local 90%"]
        dense, sparse = hw["cases"]["dense"], hw["cases"]["global-local 90%"]
        assert sparse["attention_cycles"] < dense["attention_cycles"]
        assert sparse["projection_share"] > dense["projection_share"]
        # dense attention runs on the (fused) engines too, every column on the dense engine
        assert dense["sparse_engine_cycles_per_layer"] == 0 < sparse["sparse_engine_cycles_per_layer"]
        assert dense["dense_engine_share"] is None and 0 < sparse["dense_engine_share"] < 1
        assert len(sparse["per_layer"]["dense_engine_cycles"]) == 12
    # the simulator's 64 x 64 lanes make attention faster than the 512-MAC hardware; the
    # linear and MLP layers run the same on both
    real, sim = (res["hardware"][hw]["cases"]["global-local 90%"] for hw in ("vitcod", "vitcod-sim"))
    assert sim["attention_cycles"] < real["attention_cycles"]
    assert (sim["linear_cycles"], sim["mlp_cycles"]) == (real["linear_cycles"], real["mlp_cycles"])
    assert res["notes"] == [f"mask file {cfg.mask} absent: real masks skipped"]   # not an error


def test_sparse_attention_real_masks_vary_per_layer_and_head():
    mask = Path(sparse_attention.Config().mask)
    assert mask.is_file(), f"ViTCoD masks missing: {mask} (../shared/data is required)"
    res = sparse_attention.run(sparse_attention.Config(sparsities=(0.95,),
                                                       patterns=("global-local",)))
    cases = res["hardware"]["vitcod"]["cases"]
    columns = cases["real masks (per layer)"]["per_layer"]["dense_columns"]
    assert len({tuple(heads) for heads in columns}) > 1
    assert columns[2] == [70, 1, 1]          # layer 2: head 0 has ViTCoD's 70 global tokens
    assert 0.9 < 1 - cases["real masks (layer mean)"]["kept_fraction"] < 1


def test_scaling_act_to_act_share_grows_and_generation_has_low_intensity():
    res = scaling.run(scaling.Config(seqs=(64, 256)))
    bert = [p for p in res["points"] if p["model"] == "bert-base"]
    gpt2 = [p for p in res["points"] if p["model"] == "gpt2"]
    share = [p["classes"]["act-to-act matmul"]["flops_share"] for p in bert]
    assert share[1] > share[0]
    assert [p["latency_share"]["act-to-act matmul"] for p in bert] == sorted(
        p["latency_share"]["act-to-act matmul"] for p in bert)
    assert all(g["intensity"] < b["intensity"] / 10 for g, b in zip(gpt2, bert))


def test_decoder_steps_grow_with_the_context_and_are_bandwidth_bound():
    cfg = decoder.Config(prompt=16, gen=4, bandwidths=(2, 16), dataflows=("ws",))
    res = decoder.run(cfg)
    steps = res["steps"]
    assert [s["context"] for s in steps] == [17, 18, 19, 20]
    # each step attends to one more cached token: its attention products, and so the step, grow
    assert all(a["latency_ms"] < b["latency_ms"] for a, b in zip(steps, steps[1:]))
    # one query row per step: far below the prefill's intensity, and slower per token
    assert res["decode"]["intensity"] < res["prefill"]["intensity"] / 5
    assert res["decode_vs_prefill_per_token_latency"] > 5
    low, high = res["bandwidth_sweep"]
    assert low["decode_memory_bound_share"] == pytest.approx(1.0)
    assert low["decode_fraction_of_roofline"] > 0.9     # at the bandwidth roof on a 2 B/cycle bus
    assert low["decode_ms_per_token"] > 2 * high["decode_ms_per_token"]


def test_cosearch_reachable_is_the_exhaustive_lowest_edp(tmp_path):
    """The co-design benchmark's bound: over every hardware point within the budget and every
    measured architecture within each perplexity limit, the lowest EDP; a re-run reads the
    tables back from the folder and gives the same answer."""
    from costmodel.area import area
    from costmodel.hwspace import HardwareSpace
    from costmodel.workload import Workload
    from lut.table import CostTable
    from nas.core.arch import Arch, SearchSpace

    cosearch = importlib.import_module("cosearch")
    (tmp_path / "s.yaml").write_text("base: gemmini-transformer\nrows: [8, 16, 32]\n"
                                     "cols: [8, 16]\ndram_bytes_per_cycle: [8, 32]\n")
    hw_space, space = HardwareSpace.load(tmp_path / "s.yaml"), SearchSpace.load("tiny")
    wl = Workload(seq=32, batch=1, mode="decoder", vocab=65)
    ppl = {"L4-d128-h4.3.3.2-f512.256.128.128-hd32": 9.1, "L3-d96-h3.3.3-f256.256.256-hd32": 9.6,
           "L2-d64-h2.2-f128.128-hd32": 10.5}
    limits = {"+0.1": 9.2, "+1": 10.1}
    points = list(hw_space.points())
    budget = sorted(area(hw).total_mm2 for hw in points)[-3]      # two points do not fit
    fits = [hw for hw in points if area(hw).total_mm2 <= budget]
    edp = {(k, hw.hash()): CostTable.build(space, hw, wl).cost(Arch.from_key(k)).edp
           for k in ppl for hw in fits}
    bound, per_arch = cosearch.reachable(hw_space, budget, space, wl, ppl, limits,
                                         tmp_path / "luts", workers=1)
    for name, limit in limits.items():
        best = min((e, k) for (k, _), e in edp.items() if ppl[k] <= limit)
        assert (bound[name]["edp"], bound[name]["key"]) == best
        assert bound[name]["hardware_points"] == len(fits) == len(points) - 2
        assert bound[name]["area_mm2"] <= budget
    assert bound["+0.1"]["architectures"] == 1 and bound["+1"]["architectures"] == 2
    assert per_arch == {k: min(e for (kk, _), e in edp.items() if kk == k)
                        for k in ppl if ppl[k] <= 10.1}
    assert len(list((tmp_path / "luts").glob("*.parquet"))) == len(fits)
    assert cosearch.reachable(hw_space, budget, space, wl, ppl, limits, tmp_path / "luts",
                              workers=1) == (bound, per_arch)
