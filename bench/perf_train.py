"""Data loader vs training throughput of a config: does the loader keep training fed?

    python bench/perf_train.py [key=value ...]     # default config unless overridden

Prints images/s the train DataLoader delivers (with the config's workers, no training) and
images/s a training step consumes (forward + assignment + loss + backward + optimizer step
on batches already in memory), and writes both to reports/perf.md.
"""

from __future__ import annotations

import sys
import time

import torch

from yolozoo.config import ConfigError, load_config
from yolozoo.losses import weighted_sum
from yolozoo.perf_report import update_section
from yolozoo.train import build_module, ready_datamodule


def loader_throughput(loader, num_batches: int) -> float:
    it = iter(loader)
    next(it)  # workers started, first batch out
    t0, n = time.perf_counter(), 0
    for _ in range(num_batches):
        n += next(it)["images"].shape[0]
    return n / (time.perf_counter() - t0)


def train_throughput(module, batches: list[dict]) -> float:
    opt = torch.optim.AdamW(module.model.parameters(), lr=1e-3)
    module.train()

    def step(batch):
        out = module.model(module.images(batch))
        assign = module.assigner(out.cls_logits.detach().sigmoid(), out.boxes.detach(), out.priors,
                                 batch["gt_labels"], batch["gt_boxes"], batch["gt_mask"])
        weighted_sum(module.loss(out.cls_logits, out.boxes, assign), module.loss_weights).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step(batches[0])  # warm-up
    t0 = time.perf_counter()
    for b in batches[1:]:
        step(b)
    return sum(b["images"].shape[0] for b in batches[1:]) / (time.perf_counter() - t0)


def main(argv: list[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        from yolozoo.cli_help import print_help

        return print_help(__doc__)
    try:
        cfg = load_config(argv)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    torch.manual_seed(cfg.seed)
    dm = ready_datamodule(cfg)
    loader = dm.train_dataloader()
    n = min(30, len(loader) - 1)
    load_ips = loader_throughput(loader, n)
    batches = [b for b, _ in zip(iter(dm.train_dataloader()), range(8))]
    module = build_module(cfg, len(dm.classes))
    train_ips = train_throughput(module, batches)
    ratio = load_ips / train_ips
    body = (f"Config: `{' '.join(argv) or 'default'}` ({cfg.model.backbone}, width {cfg.model.width}, "
            f"{cfg.data.img_size} px, batch {cfg.trainer.batch_size}, {dm.num_workers} loader workers, "
            f"{torch.get_num_threads()} torch threads).\n\n"
            f"| what | images/s |\n|---|---|\n| data loader delivers | {load_ips:.0f} |\n"
            f"| training consumes | {train_ips:.0f} |\n| ratio (target >= 3) | {ratio:.1f}x |")
    print(body)
    update_section("Loader vs training throughput", body, "python bench/perf_train.py " + " ".join(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
