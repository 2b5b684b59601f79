"""Device choice, thread count and determinism for the direct method's torch code."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS

DEFAULT_THREADS = 2
"""CPU threads used when none are given (the workflow's infer and train rules use 2)."""


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device '{name}' asked for, but no CUDA device is available")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got '{name}'")
    return dev


def configure(seed: int, threads: int | None, device: torch.device) -> None:
    """Seed every generator, fix the CPU thread count, ask for deterministic algorithms.

    On CUDA a few backward kernels (grid sampling, max pooling) have no deterministic
    version: there torch only warns, so GPU training is reproducible up to those kernels;
    CPU training and all inference are deterministic.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.set_num_threads(int(threads or DEFAULT_THREADS))
    torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
