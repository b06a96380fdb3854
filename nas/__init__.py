"""Hardware-aware NAS for transformers.

Layers (imports point downwards only):
    nas.core.arch, nas.core.errors      plain data: architectures, search spaces, named models (no torch)
    costmodel, supernet       the accelerator simulator (no torch) / the elastic supernet (torch)
    lut                       per-operator lookup tables filled by costmodel
    nas.search, nas.cli       evolutionary search and the `nas` command line
"""

__version__ = "0.1.0"
