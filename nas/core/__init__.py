"""The foundation layer: plain data and helpers every other package may use.

    arch       architectures (`Arch`), search spaces (`SearchSpace`), named models
    errors     `UserError`, the one exception for bad user input
    atomic     atomic file writes (temporary file, then rename; the user's umask)
    plotting   matplotlib on Agg and atomic figure writes
    options    dataclass fields as command-line options
    provenance what a result file records of its run (command, commit, machine, simulator)

Nothing here imports torch, numpy-heavy code, DEAP, the simulator, the supernet, the search or
the command line (tests/test_layers.py keeps it so).
"""
