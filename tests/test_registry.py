"""The one name -> builder registry (yolozoo/registry.py) behind assigners, model families and datasets."""

from __future__ import annotations

import pytest

from yolozoo.registry import Registry, UnknownNameError


def test_a_name_registers_once_and_a_repeat_of_the_same_builder_is_harmless():
    reg = Registry("widget")

    def build(size: int = 1):
        return size

    assert reg.register("a")(build) is build
    assert reg.register("a")(build) is build  # a module imported twice registers the same function again
    with pytest.raises(ValueError, match=r"widget 'a' registered twice \(first by test_registry\)"):
        reg.register("a")(lambda size=1: size)
    assert reg.create("a", size=3) == 3
    with pytest.raises(UnknownNameError, match=r"widget 'a' has no option 'sise'; valid: size; did you mean 'size'"):
        reg.create("a", sise=3)
    with pytest.raises(UnknownNameError, match=r"unknown widget 'b'; valid: a"):
        reg.get("b")


def test_datasets_assigners_and_families_share_it():
    from yolozoo.assigners.base import ASSIGNERS
    from yolozoo.data.registry import DATASETS, list_datasets
    from yolozoo.models.families import FAMILIES

    assert all(isinstance(r, Registry) for r in (DATASETS, ASSIGNERS, FAMILIES))
    assert {"coco", "digits", "voc", "yolo"} <= set(list_datasets()) == set(DATASETS.names())
