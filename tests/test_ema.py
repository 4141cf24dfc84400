"""FusedEMA averages the weights as Lightning's EMAWeightAveraging does, up to float rounding; its integer buffers
follow the model's."""

import lightning as L
import torch
from lightning.pytorch.callbacks import EMAWeightAveraging
from torch import nn
from torch.utils.data import DataLoader

from yolozoo.ema import FusedEMA


class Tiny(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
                                 nn.Linear(8 * 6 * 6, 1))

    def training_step(self, batch, batch_idx):
        return self.net(batch).square().mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _averaged(ema) -> dict:
    torch.manual_seed(0)
    module = Tiny()
    data = DataLoader(torch.randn(24, 3, 8, 8), batch_size=4)
    trainer = L.Trainer(max_steps=6, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[ema])
    trainer.fit(module, train_dataloaders=data)
    return {k: v.clone() for k, v in ema._average_model.module.state_dict().items()}


def test_fused_ema_matches_lightnings_ema():
    stock = _averaged(EMAWeightAveraging(decay=0.9, update_starting_at_step=2))
    fused = _averaged(FusedEMA(decay=0.9, update_starting_at_step=2))
    assert stock.keys() == fused.keys()
    moved = 0
    for key in stock:
        if stock[key].is_floating_point():
            torch.testing.assert_close(fused[key], stock[key], rtol=1e-5, atol=1e-6)
            moved += 1
        else:  # BatchNorm's num_batches_tracked: the model's count of its 6 training batches
            assert fused[key].item() == 6, key
            assert stock[key].item() < 6  # the stock average of a counter, cast to an integer, stays behind
    assert moved >= 6


def test_a_later_start_leaves_the_average_at_the_first_weights():
    early = _averaged(FusedEMA(decay=0.9, update_starting_at_step=0))
    never = _averaged(FusedEMA(decay=0.9, update_starting_at_step=100))
    assert not torch.equal(early["net.0.weight"], never["net.0.weight"])


def test_fused_ema_gathers_the_tensors_once_and_skips_frozen_ones(monkeypatch):
    """After the first update, FusedEMA averages on tensor lists it gathered once (AveragedModel.update_parameters
    is called once, not per step); a frozen parameter is left out and stays equal to the model's."""
    from torch.optim.swa_utils import AveragedModel

    calls = []
    stock_update = AveragedModel.update_parameters
    monkeypatch.setattr(AveragedModel, "update_parameters", lambda self, m: calls.append(1) or stock_update(self, m))
    monkeypatch.setattr(Tiny, "on_fit_start", lambda self: self.net[0].weight.requires_grad_(False))
    stock = _averaged(EMAWeightAveraging(decay=0.9, update_starting_at_step=2))
    stock_calls, calls[:] = len(calls), []
    fused = _averaged(FusedEMA(decay=0.9, update_starting_at_step=2))
    assert stock_calls == 4 and len(calls) == 1  # steps 3-6 update
    for key in stock:
        if stock[key].is_floating_point():
            torch.testing.assert_close(fused[key], stock[key], rtol=1e-5, atol=1e-6)
    torch.manual_seed(0)
    assert torch.equal(fused["net.0.weight"], Tiny().net[0].weight)  # frozen: never moved from its start
