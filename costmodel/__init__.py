"""Accelerator cost model: a pure function of (hardware config, workload operators).

No torch, no datasets: only numpy, PyYAML and the plain-data `nas.core.arch` module.
"""
