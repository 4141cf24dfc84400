"""Label assigners behind one interface; importing this package registers them all."""

from . import all_grid, atss, fcos, grid, simota, tal, yolov1, yolov5  # noqa: F401  (registers)
from .base import AssignResult, Priors, create_assigner, list_assigners, register_assigner

__all__ = ["AssignResult", "Priors", "create_assigner", "list_assigners", "register_assigner"]
