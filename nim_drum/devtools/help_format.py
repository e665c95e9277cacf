"""The --help formatter of the devtools' CLIs: each option's default, and paths kept whole."""

from __future__ import annotations

import argparse
import textwrap


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, unless its help already says it or it has none; wraps at spaces only."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.required or action.default in (None, False):
            return text
        return super()._get_help_string(action) or text

    def _split_lines(self, text: str, width: int) -> list[str]:
        # argparse's textwrap breaks at hyphens: a default path in a checkout whose own path had a
        # different length came out as ".../nim-drum-" and "image.tar.gz", which cannot be copied.
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False, break_long_words=False)
