"""Hardware-aware NAS for transformers.

Layers (imports point downwards only; tests/test_layers.py keeps it so):
    nas.core                 plain data and helpers: architectures, spaces, errors, atomic I/O
    costmodel | supernet     the accelerator simulator (no torch) | the elastic supernet (torch)
    lut                      per-operator lookup tables filled by costmodel
    nas.search               evolutionary search around the `Candidate` record (DEAP)
    nas.pipeline, nas.cli    the whole job, and the `nas` command line that calls it
"""

__version__ = "0.1.0"
