"""The grammar shared by sweep and search files, as pydantic models: a key the model does not name is an error listing
the valid ones, a value keeps the type YAML gave it (strict: ``"1"`` is not an integer), and every fault becomes one
:class:`SweepError` ``FILE: dotted.key: what is wrong`` (:func:`validated`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, ValidationError, ValidationInfo, model_validator

from ..config import flatten

Scalar = str | int | float | bool | None
Model = TypeVar("Model", bound=BaseModel)
NOT_KEYS = ("values", "labels", "float", "int", "categorical", "[key]")  # tagged-union branches in error locations


class SweepError(ValueError):
    """A bad sweep or search file, name or option; the message names the file and key and what to fix."""


class FileModel(BaseModel):
    """A part of a sweep or search file."""

    model_config = {"extra": "forbid", "strict": True}

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise ValueError(f"must be a mapping with keys {', '.join(cls.model_fields)}, got {data!r}")
        unknown = [k for k in data if k not in cls.model_fields]
        if unknown:
            raise ValueError(f"unknown key {unknown[0]!r}; valid keys: {', '.join(cls.model_fields)}")
        return data


class SpecFile(FileModel):
    """A whole sweep or search file, read from ``path``; ``name`` must equal the file's stem."""

    name: str
    description: str = ""
    _path: Path

    @property
    def path(self) -> Path:
        return self._path

    @model_validator(mode="after")
    def _stem(self, info: ValidationInfo) -> SpecFile:
        self._path = info.context["path"]
        if self.name != self.path.stem:
            raise ValueError(f"name must equal the file stem {self.path.stem!r}, got {self.name!r}")
        return self


def _scalar(value: Any) -> Any:
    if value is not None and not isinstance(value, (str, int, float, bool)):
        raise ValueError(f"must be a number, string, boolean or null, got {value!r}")
    return value


def _distinct(values: list) -> list:
    if len(set(map(repr, values))) != len(values):
        raise ValueError(f"repeats a value: {values}")
    return values


Value = Annotated[Any, AfterValidator(_scalar)]  # one Scalar (one error message, not one per type of the union)
DISTINCT = AfterValidator(_distinct)
Values = Annotated[list[Value], Field(min_length=1), DISTINCT]
NONE_IS_EMPTY = BeforeValidator(lambda v: {} if v is None else v)  # an empty (null) mapping is an empty one
Overrides = Annotated[dict[str, Any], NONE_IS_EMPTY, AfterValidator(flatten)]  # dotted (or nested) key -> value


def validated(model: type[Model], data: Any, path: Path | str, error: type = SweepError, **context: Any) -> Model:
    """``data`` (a sweep or search file's YAML, at ``path``; or the command line's options) as ``model``; every fault
    named in one ``error``."""
    try:
        return model.model_validate(data, context={"path": path, **context})
    except ValidationError as e:
        faults = [(".".join(str(p) for p in err["loc"] if p not in NOT_KEYS), err["msg"].removeprefix("Value error, "))
                  for err in e.errors()]
        raise error(f"{path}: " + "; ".join(f"{at}: {msg}" if at else msg for at, msg in faults)) from None


def read_spec(path: Path, model: type[Model], error: type = SweepError, **context: Any) -> Model:
    """The sweep or search file at ``path``, :func:`validated` as ``model``."""
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise error(f"{path}: not valid YAML: {e}") from None
    return validated(model, data, path, error, **context)
