"""The elastic GPT-style supernet: model, data, sandwich-rule training, checkpoints, evaluation.

Imports torch; `nas.core.arch` defines the architectures and search spaces it slices to.
"""
