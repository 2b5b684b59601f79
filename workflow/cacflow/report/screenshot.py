"""Render the report to PNG with headless Chromium, to look at it as a reader would."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
WINDOW_SIZE = (1200, 3000)
"""Browser window (width, height) in CSS pixels; the screenshot covers this window."""
TIMEOUT_S = 120


def find_chromium() -> str | None:
    """Path of a Chromium-compatible browser on PATH, or None."""
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def screenshot(
    html_path: str | os.PathLike,
    png_path: str | os.PathLike,
    *,
    window_size: tuple[int, int] = WINDOW_SIZE,
) -> bool:
    """Screenshot ``html_path`` to ``png_path``; returns False (and does nothing) without
    Chromium. Raises ``RuntimeError`` when Chromium runs but writes no image."""
    browser = find_chromium()
    if browser is None:
        return False
    html = Path(html_path).resolve()
    png = Path(png_path).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        browser,
        "--headless",
        "--no-sandbox",  # containers and CI run as root
        "--disable-gpu",
        "--hide-scrollbars",
        f"--window-size={window_size[0]},{window_size[1]}",
        f"--screenshot={png}",
        html.as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)  # noqa: S603
    if not png.exists():
        raise RuntimeError(f"chromium wrote no screenshot (exit {proc.returncode})")
    return True
