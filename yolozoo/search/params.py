"""One searched parameter of a search file's ``params`` (see :mod:`.space`): a dotted config key, its distribution
(``{type: float|int|categorical, low, high, log, step, choices}``) and ``when`` it applies.

``when`` maps a config key (or an earlier parameter) to a value or a list of values; the parameter is sampled
only in trials where every condition holds, and otherwise left at its config value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import optuna

from ..sweep.spec import SweepError

TYPES = ("float", "int", "categorical")
FIELDS = {"float": ("type", "low", "high", "log", "step", "when"),
          "int": ("type", "low", "high", "log", "step", "when"),
          "categorical": ("type", "choices", "when")}

Scalar = str | int | float | bool | None


class SearchError(SweepError):
    """A bad search space file, name or search option; the message names the file and key and what to fix."""


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def same_value(a: Any, b: Any) -> bool:
    """Config values compare equal, or their text does (``0.5`` from YAML vs ``"0.5"`` from a command line)."""
    return a == b or str(a) == str(b)


@dataclass(frozen=True)
class Param:
    """A searched config key. ``low``/``high``/``log``/``step`` for float and int, ``choices`` for categorical."""

    key: str
    type: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Scalar, ...] = ()
    when: dict[str, tuple[Scalar, ...]] = field(default_factory=dict)

    def applies(self, values: Mapping[str, Any]) -> bool:
        """Whether every ``when`` condition holds for ``values`` (key -> the trial's current value)."""
        return all(any(same_value(values.get(k), v) for v in allowed) for k, allowed in self.when.items())

    def suggest(self, trial: optuna.Trial) -> Scalar:
        """Sample this parameter in ``trial`` (Optuna's parameter name is the dotted key)."""
        if self.type == "float":
            return trial.suggest_float(self.key, self.low, self.high, log=self.log, step=self.step)
        if self.type == "int":
            return trial.suggest_int(self.key, self.low, self.high, log=self.log, step=self.step or 1)
        return trial.suggest_categorical(self.key, list(self.choices))

    def probe_values(self) -> list[Scalar]:
        """Values whose configs are checked before a search starts: the bounds, or every choice."""
        return list(self.choices) if self.type == "categorical" else [self.low, self.high]

    def summary(self) -> dict:
        """JSON-able form, stored with the study."""
        out: dict[str, Any] = {"type": self.type}
        if self.type == "categorical":
            out["choices"] = list(self.choices)
        else:
            out.update(low=self.low, high=self.high, log=self.log, step=self.step)
        if self.when:
            out["when"] = {k: list(v) for k, v in self.when.items()}
        return out


def parse_param(key: Any, spec: Any, where: str) -> Param:
    """Check one ``params:`` entry of a search file; ``where`` names the file for errors."""
    if not isinstance(key, str) or not key:
        raise SearchError(f"{where}: params: keys must be dotted config keys, got {key!r}")
    where = f"{where}: params.{key}"
    if not isinstance(spec, dict):
        raise SearchError(f"{where}: must be a mapping like {{type: float, low: 0.001, high: 0.1}}, got {spec!r}")
    kind = spec.get("type")
    if kind not in TYPES:
        raise SearchError(f"{where}: type must be one of {', '.join(TYPES)}, got {kind!r}")
    unknown = [k for k in spec if k not in FIELDS[kind]]
    if unknown:
        raise SearchError(f"{where}: unknown field {unknown[0]!r} for type {kind}; valid: {', '.join(FIELDS[kind])}")
    when = _parse_when(spec.get("when"), key, where)
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise SearchError(f"{where}: choices must be a non-empty list, got {choices!r}")
        bad = [c for c in choices if c is not None and not isinstance(c, (str, int, float, bool))]
        if bad:
            raise SearchError(f"{where}: choices must be numbers, strings, booleans or null, got {bad[0]!r}")
        if len(set(map(repr, choices))) != len(choices):
            raise SearchError(f"{where}: choices repeat a value: {choices}")
        return Param(key, kind, choices=tuple(choices), when=when)
    low, high, log, step = spec.get("low"), spec.get("high"), spec.get("log", False), spec.get("step")
    if not _number(low) or not _number(high):
        raise SearchError(f"{where}: low and high must be numbers, got low={low!r} high={high!r}")
    if kind == "int" and not (isinstance(low, int) and isinstance(high, int)):
        raise SearchError(f"{where}: an int parameter needs integer low/high, got low={low!r} high={high!r}")
    if not low < high:
        raise SearchError(f"{where}: low must be below high, got low={low} high={high}")
    if not isinstance(log, bool):
        raise SearchError(f"{where}: log must be true or false, got {log!r}")
    if log and low <= 0:
        raise SearchError(f"{where}: a log-scale parameter needs low > 0, got {low}")
    if step is not None:
        if not _number(step) or step <= 0 or (kind == "int" and not isinstance(step, int)):
            raise SearchError(f"{where}: step must be a positive {'integer' if kind == 'int' else 'number'}, "
                              f"got {step!r}")
        if log:
            raise SearchError(f"{where}: step and log cannot be combined (Optuna samples either on a grid or "
                              "on a log scale); drop one")
    if kind == "float":
        low, high, step = float(low), float(high), None if step is None else float(step)
    return Param(key, kind, low=low, high=high, log=log, step=step, when=when)


def _parse_when(when: Any, key: str, where: str) -> dict[str, tuple[Scalar, ...]]:
    if when is None:
        return {}
    if not isinstance(when, dict) or not when:
        raise SearchError(f"{where}: when must map config keys to a value or a list of values, "
                          f"e.g. {{assigner.name: tal}}; got {when!r}")
    out = {}
    for cond_key, allowed in when.items():
        if cond_key == key:
            raise SearchError(f"{where}: when cannot name the parameter itself")
        values = allowed if isinstance(allowed, list) else [allowed]
        if not values or any(isinstance(v, (dict, list)) for v in values):
            raise SearchError(f"{where}: when.{cond_key} must be a value or a non-empty list of values, "
                              f"got {allowed!r}")
        out[str(cond_key)] = tuple(values)
    return out
