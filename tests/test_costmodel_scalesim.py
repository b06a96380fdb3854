"""Cross-check of GEMM compute cycles against SCALE-Sim 3.0.0 reference runs (../shared/oracles)."""

import json
from pathlib import Path

import pytest

from costmodel.hardware import HardwareConfig, scalesim_equivalent
from costmodel.simulate import gemm_cost

ORACLE = Path(__file__).resolve().parents[1].parent / "shared" / "oracles" / "scalesim-3.0.0-ws.jsonl"


def scalesim_like(run: dict) -> HardwareConfig:
    return scalesim_equivalent(run["rows"], run["cols"], run["dataflow"], run["ifmap_kb"],
                               run["filter_kb"], run["ofmap_kb"])


def runs() -> list[dict]:
    if not ORACLE.is_file():
        return []
    return [json.loads(line) for line in ORACLE.read_text().splitlines() if line.strip()]


def test_oracle_file_has_all_runs():
    if not ORACLE.is_file():
        pytest.skip(f"SCALE-Sim oracle not found at {ORACLE}")
    assert len(runs()) == 18


@pytest.mark.parametrize("run", runs(), ids=lambda r: f"{r['shape']}-{r['rows']}x{r['cols']}")
def test_compute_cycles_within_5_percent_of_scalesim(run):
    g = gemm_cost(run["M"], run["K"], run["N"], scalesim_like(run))
    assert g.compute == pytest.approx(run["compute_cycles"], rel=0.05)
    assert g.cycles == pytest.approx(run["compute_cycles"], rel=0.05)   # ample bandwidth
