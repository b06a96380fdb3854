"""The foundation layer: plain data and helpers every other package may use.

    arch       architectures (`Arch`), search spaces (`SearchSpace`), named models
    errors     `UserError`, the one exception for bad user input
    paths      inputs that must be files; outputs checked before the work, creating nothing;
               devices, pipes and /dev/stdout written in place
    atomic     atomic file writes (temporary file, then rename; the user's umask); stale
               temporary files of killed writers removed
    yamlfile   the one reader of YAML arguments (one-line errors for binary, empty, malformed)
    runlock    one run at a time per run folder (fcntl.flock; a dead run's lock taken over)
    plotting   matplotlib on Agg and atomic figure writes
    options    dataclass fields as command-line options
    provenance what a result file records of its run (command, commit, machine, simulator)

Nothing here imports torch, numpy-heavy code, DEAP, the simulator, the supernet, the search or
the command line (tests/test_layers.py keeps it so).
"""
