"""Device choice, thread count and determinism for the direct method's torch code (shared
with the other learned methods: :mod:`cacflow.methods.torchutil`)."""

from __future__ import annotations

from cacflow.methods.torchutil import DEFAULT_THREADS, configure, resolve_device

__all__ = ["DEFAULT_THREADS", "configure", "resolve_device"]
