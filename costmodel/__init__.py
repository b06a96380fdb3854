"""Accelerator cost model: a pure function of (hardware config, workload operators).

No torch, no datasets: only numpy, PyYAML and the plain-data `nas.core` modules. One direction,
each module one job:

    hardware       the accelerator (HardwareConfig, presets) and the rules a configuration obeys
    workload       a model's operators (Op) and their lookup-table groups (GroupKey)
    simulate       which model costs each operator (op_cost); a model's Report
    gemm           dense GEMMs on the whole array: systolic (via mapping) or MAC lines
    sparse_engine  ViTCoD's dense + sparse attention engines (uses gemm)
    nonlinear      softmax, LayerNorm, GELU, adds, Taylor vector ops (SFUs, host, ViTALiTy)
    mapping        how one GEMM is tiled and scheduled on a systolic array
    cost           energy per action; the per-operator (OpCost) and whole-model (Cost) records
    sparsity       attention masks and sparse patterns, split between the engines
    area, hwspace  silicon area; hardware search spaces
    profile        hardware-independent FLOPs and memory operations
    report, plots  what `nas hw|profile|simulate` print, write and draw
"""
