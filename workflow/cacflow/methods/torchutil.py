"""Torch helpers shared by the learned methods (``direct``, ``segment``): device choice,
seeds and determinism, and weights files with their sha256.

A weights file is ``torch.save`` of a plain dict (tensors, numbers, strings, lists) with a
``format`` key; ``<file>.sha256`` beside it (``sha256sum`` format). It is loaded only with
``torch.load(..., weights_only=True)`` after the checksum matched.
"""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cacflow.provenance import atomic_path

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


# --- weights files -----------------------------------------------------------------------
def sha256_of(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def checksum_path(path: str | os.PathLike) -> Path:
    return Path(f"{path}.sha256")


def save_checkpoint(ckpt: dict[str, Any], path: str | os.PathLike) -> str:
    """Write the weights file and ``<path>.sha256`` (``sha256sum`` format); returns the hash."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)
    digest = sha256_of(path)
    with atomic_path(checksum_path(path)) as tmp:
        tmp.write_text(f"{digest}  {path.name}\n")
    return digest


def verify_checksum(path: str | os.PathLike) -> str:
    """The file's sha256 when it matches ``<path>.sha256``; ValueError (one line) otherwise."""
    path = Path(path)
    side = checksum_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model weights not found")
    if not side.is_file():
        raise ValueError(f"{path}: no checksum file {side.name}; refusing to load the weights")
    text = side.read_text().split()
    expected = text[0].lower() if text else ""
    actual = sha256_of(path)
    if actual != expected:
        raise ValueError(
            f"{path}: sha256 {actual[:16]}... does not match {side.name} "
            f"({expected[:16]}...); refusing to load the weights"
        )
    return actual


def load_checkpoint(path: str | os.PathLike, fmt: str) -> dict[str, Any]:
    """Verify the sha256, then ``torch.load(..., weights_only=True)`` onto the CPU; the
    dict's ``format`` must be ``fmt``."""
    verify_checksum(path)
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != fmt:
        raise ValueError(f"{path}: not a {fmt} weights file")
    return ckpt
