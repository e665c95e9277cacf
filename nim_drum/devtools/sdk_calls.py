"""The `datarobot` SDK calls a deploy step makes: made for real, or printed with their arguments for --dry-run.

Secrets are printed by their source's name (`<DATAROBOT_API_TOKEN, redacted>`), never by content.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nim_drum.devtools.deploy_values import DeployValues


class Secret(str):
    """A value the dry run prints by its source's name, never by its content."""

    source = ""

    def __repr__(self) -> str:
        return f"<{self.source or 'secret'}, redacted>"


def secret(value: str, source: str) -> Secret:
    wrapped = Secret(value)
    wrapped.source = source
    return wrapped


class Pending:
    """What a call would have returned, in a dry run: its attributes and items name where they come from."""

    def __init__(self, expression: str):
        self.expression = expression

    def __getattr__(self, name: str) -> Pending:
        return Pending(f"{self.expression}.{name}")

    def __getitem__(self, key: Any) -> Pending:
        return Pending(f"{self.expression}[{key!r}]")

    def __repr__(self) -> str:
        return self.expression

    __str__ = __repr__


class Calls:
    """Every SDK call goes through here: made for real, or printed with its arguments in a dry run."""

    def __init__(self, dry_run: bool, out: Callable[[str], None] = print):
        self.dry_run, self.out = dry_run, out

    def __call__(self, call: str, /, *args: Any, **kwargs: Any) -> Any:
        if self.dry_run:
            shown = [_shown(a) for a in args] + [f"{k}={_shown(v)}" for k, v in kwargs.items()]
            self.out(f"dr.{call}({', '.join(shown)})")
            return Pending(f"<{call}>")
        import datarobot

        target: Any = datarobot
        for part in call.split("."):
            target = getattr(target, part)
        return target(*args, **kwargs)

    def runtime_parameter_values(self, values: DeployValues) -> list:
        if self.dry_run:
            return [_Shown(f"RuntimeParameterValue(field_name={v.field_name!r}, type={v.type!r}, value={v.value!r})")
                    for v in values.values]
        from datarobot.models.runtime_parameters import RuntimeParameterValue

        return [RuntimeParameterValue(field_name=v.field_name, type=v.type, value=v.value) for v in values.values]


class _Shown(str):
    def __repr__(self) -> str:
        return str(self)


def _shown(value: Any) -> str:
    if isinstance(value, list) and len(value) > 3:
        return "[\n    " + ",\n    ".join(_shown(v) for v in value) + ",\n]"
    return repr(value)
