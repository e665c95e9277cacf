"""Rates and time left, for the progress of a batch and of a download."""


def per_second(count: float, seconds: float) -> float:
    return count / max(seconds, 1e-9)


def seconds_left(remaining: float, rate: float) -> float:
    """At this rate; infinite while nothing has been done yet."""
    return remaining / rate if rate else float("inf")
