"""Cross-check of GEMM compute cycles against SCALE-Sim 3.0.0 reference runs (../shared/oracles).

README and experiments/validation claim agreement to one cycle (largest error 0.056%) on all 18
runs; these tests hold the simulator to exactly that. The reference file must be present: a
missing file fails the tests instead of leaving nothing to compare.
"""

import pytest

from costmodel.gemm import gemm_cost
from costmodel.hardware import HardwareConfig, scalesim_equivalent

RUNS = 18                      # 6 GEMM shapes x 3 arrays (16x16, 32x32, 64x8)


def scalesim_like(run: dict) -> HardwareConfig:
    return scalesim_equivalent(run["rows"], run["cols"], run["dataflow"], run["ifmap_kb"],
                               run["filter_kb"], run["ofmap_kb"])


def test_oracle_file_has_all_runs(scalesim_runs):
    assert len(scalesim_runs) == RUNS
    assert len({(r["M"], r["K"], r["N"], r["rows"], r["cols"]) for r in scalesim_runs}) == RUNS


@pytest.mark.parametrize("index", range(RUNS))
def test_compute_cycles_match_scalesim_to_one_cycle(index, scalesim_runs):
    run = scalesim_runs[index]
    g = gemm_cost(run["M"], run["K"], run["N"], scalesim_like(run))
    ref = run["compute_cycles"]
    # SCALE-Sim's count ends one cycle before ours (experiments/validation/scalesim_compare/)
    assert abs(g.compute - ref) <= 1, (run["shape"], g.compute, ref)
    # with ample bandwidth only the first tile's load is exposed: within the claimed 0.06%
    assert g.cycles == pytest.approx(ref, rel=6e-4), (run["shape"], g.cycles, ref)
