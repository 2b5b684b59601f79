"""The per-dataset HTML report: cohort flow, conventions, agreement tables and figures."""

from cacflow.report.html import render_report
from cacflow.report.screenshot import find_chromium, screenshot

__all__ = ["find_chromium", "render_report", "screenshot"]
