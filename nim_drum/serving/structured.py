"""Structured output: checking that answers are the JSON that response_format asked for."""

from __future__ import annotations

import json


def answer_problem(answers: list[str]) -> str | None:
    """Why an answer that should be JSON is not, or None when every choice parses."""
    for answer in answers:
        try:
            json.loads(answer)
        except json.JSONDecodeError as err:
            return (
                f"the answer is not valid JSON ({err.msg} at character {err.pos}) although response_format asks "
                "for JSON; raise max_tokens if it was cut off (finish_reason length)"
            )
    return None
