"""Text for the flows' markdown artifacts."""

from __future__ import annotations


def md_text(text: str) -> str:
    """One line of free text that stays inside a markdown table cell or list item."""
    return text.replace("|", "\\|").replace("\n", " ")
