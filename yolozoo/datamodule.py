"""The LightningDataModule: datasets by name from the registry, transforms, loaders."""

from __future__ import annotations

import os

import lightning as L
import torch
from torch.utils.data import DataLoader

from .data.collate import collate_detection
from .data.registry import create_dataset
from .data.transforms import MosaicDataset, build_transforms


def default_num_workers() -> int:
    """Loader processes for this machine: 0 with two CPUs or fewer, else ``min(8, CPUs // 2)``.

    On two cores, worker processes take CPU time from the two training threads, whose parallel
    ops then wait for each other: loading in the training process trains about 15% faster.
    """
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return 0 if cpus <= 2 else min(8, cpus // 2)


class DetectionDataModule(L.LightningDataModule):
    """Train/val loaders for registered dataset ``name``.

    Args:
        name, root, options: passed to ``create_dataset`` (options are the builder's).
        img_size: letterboxed square size.
        batch_size, num_workers: loader settings (val uses the same batch size); ``num_workers=None``
            picks :func:`default_num_workers`.
        flip, color_jitter, scale, translate, mosaic: training augmentation strengths (0 disables);
            see :func:`~yolozoo.data.transforms.build_transforms` and :class:`MosaicDataset`.
        seed: seeds the mosaic sampler.
        cache: decode every image once into memory before the loaders start (see
            :meth:`~yolozoo.data.base.DetectionDataset.cache_images`).
    """

    def __init__(self, name: str, root: str | None, options: dict, img_size: int, batch_size: int,
                 num_workers: int | None, flip: float = 0.0, color_jitter: float = 0.3, scale: float = 0.0,
                 translate: float = 0.0, mosaic: float = 0.0, seed: int = 0, cache: bool = False):
        super().__init__()
        self.name, self.root, self.options = name, root, dict(options)
        self.img_size, self.batch_size = img_size, batch_size
        self.num_workers = default_num_workers() if num_workers is None else num_workers
        self.flip, self.color_jitter, self.mosaic, self.seed = flip, color_jitter, mosaic, seed
        self.scale, self.translate, self.cache = scale, translate, cache
        self.train_dataset = self.val_dataset = None

    def prepare_data(self):
        # Runs on one process: builds caches (digits generation) before workers start.
        for split in ("train", "val"):
            create_dataset(self.name, split, self.root, **self.options)

    def setup(self, stage: str | None = None):
        if self.val_dataset is None:
            self.val_dataset = create_dataset(self.name, "val", self.root,
                                              transforms=build_transforms(self.img_size, train=False), **self.options)
            if self.cache:
                self.val_dataset.cache_images()
        if self.train_dataset is None and stage in (None, "fit"):
            train = create_dataset(self.name, "train", self.root, transforms=build_transforms(
                self.img_size, train=True, flip=self.flip, color_jitter=self.color_jitter, scale=self.scale,
                translate=self.translate), **self.options)
            if self.cache:
                train.cache_images()
            if self.mosaic > 0:
                train = MosaicDataset(train, self.img_size, prob=self.mosaic, seed=self.seed)
            self.train_dataset = train

    @property
    def classes(self) -> list[str]:
        self.setup("validate")
        return self.val_dataset.classes

    def _loader(self, dataset, shuffle: bool) -> DataLoader:
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=shuffle, drop_last=shuffle,
                          num_workers=self.num_workers, collate_fn=collate_detection,
                          persistent_workers=self.num_workers > 0,
                          pin_memory=torch.cuda.is_available())  # page-locked batches copy to the GPU asynchronously

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_dataset, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_dataset, shuffle=False)
