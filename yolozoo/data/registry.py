"""Datasets by name: ``create_dataset("voc", "train", root=...)``.

A builder is ``build(split, root, **options) -> DetectionDataset`` registered with
:func:`register_dataset`. Builders live next to their format parser (``coco.py``,
``voc.py``, ``yolo.py``, ``digits.py``); those modules are imported lazily here on first
use, so importing the registry never imports a parser and a parser may import the
registry without a cycle.

Also here: the two checks every on-disk builder needs (a root was given, the image files
listed by the annotations exist), so their error messages read the same for all formats.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable
from pathlib import Path

from yolozoo.data.base import DatasetError, DetectionDataset
from yolozoo.registry import Registry

SPLITS = ("train", "val")

# Modules whose import registers the built-in datasets.
_BUILTIN_MODULES = ("yolozoo.data.coco", "yolozoo.data.voc", "yolozoo.data.yolo", "yolozoo.data.digits")

DATASETS = Registry("dataset")

Builder = Callable[..., DetectionDataset]


def register_dataset(name: str) -> Callable[[Builder], Builder]:
    """Decorator registering ``build(split, root, **options) -> DetectionDataset`` as ``name``.

    Options are the builder's keyword parameters after ``split`` and ``root``; each needs a
    default, and :func:`create_dataset` rejects any other option by name.
    """

    return DATASETS.register(name)


def _load_builtins() -> None:
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)


def list_datasets() -> list[str]:
    """Names accepted by :func:`create_dataset`, sorted."""
    _load_builtins()
    return DATASETS.names()


def dataset_options(name: str) -> dict[str, object]:
    """The options of dataset ``name`` and their defaults."""
    _load_builtins()
    if name not in DATASETS.names():
        raise ValueError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS.names())}")
    params = list(inspect.signature(DATASETS.get(name)).parameters.values())[2:]  # skip split, root
    return {p.name: p.default for p in params if p.kind is not inspect.Parameter.VAR_KEYWORD}


def create_dataset(
    name: str,
    split: str,
    root: str | Path | None = None,
    transforms: Callable | None = None,
    **options,
) -> DetectionDataset:
    """Build dataset ``name`` for ``split`` ("train" or "val").

    Args:
        name: a registered dataset (see :func:`list_datasets`).
        split: "train" or "val".
        root: where the data lives; its meaning is the builder's (see each builder).
        transforms: set as the dataset's ``transforms`` (a v2 callable on ``(image, target)``).
        options: builder options; an unknown one is an error naming the valid ones.
    """
    valid = dataset_options(name)  # also raises on an unknown name
    if split not in SPLITS:
        raise ValueError(f"dataset {name!r}: unknown split {split!r}; valid: {', '.join(SPLITS)}")
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(
            f"dataset {name!r}: unknown option(s) {', '.join(unknown)}; "
            f"valid: {', '.join(valid) if valid else '(none)'}"
        )
    dataset = DATASETS.get(name)(split, root, **options)
    if transforms is not None:
        dataset.transforms = transforms
    return dataset


def require_root(name: str, root: str | Path | None) -> Path:
    """``root`` as an existing Path, or a clear error saying how to pass it."""
    if root is None or str(root) == "":
        raise DatasetError(f"dataset {name!r} needs a data root: pass data.root=/path/to/{name}")
    path = Path(root).expanduser()
    if not path.exists():
        raise DatasetError(f"dataset {name!r}: data root {path} does not exist (set data.root=...)")
    return path


def check_files_exist(files: Iterable[Path], source: Path, show: int = 5) -> None:
    """Raise naming ``source`` (the annotation file) if any of ``files`` is missing on disk."""
    missing = [f for f in files if not f.is_file()]
    if missing:
        first = ", ".join(str(f) for f in missing[:show])
        more = f" (and {len(missing) - show} more)" if len(missing) > show else ""
        raise DatasetError(f"{source}: {len(missing)} image file(s) missing, e.g. {first}{more}")
