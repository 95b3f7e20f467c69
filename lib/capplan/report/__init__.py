"""Rendering: figures, the handoff document (Markdown and self-contained HTML).

The report renders findings; it never computes a number (see :mod:`capplan.report.document`).
"""
