"""Ctrl-C that always stops a run, even when it lands inside a destructor or a weakref callback.

Python raises KeyboardInterrupt wherever the main thread is when SIGINT arrives. Inside a ``__del__``
or a weakref callback (garbage collection at an epoch's end, say) the exception is printed as
"Exception ignored in ..." and dropped, and training goes on. :class:`CtrlC` remembers the signal
and raises it again at the next batch or epoch boundary, where Lightning's own Ctrl-C handling
takes over.
"""

from __future__ import annotations

import signal
import threading

from lightning.pytorch.callbacks import Callback


class CtrlC(Callback):
    """Installs a SIGINT handler for the fit (main thread only, and not where SIGINT is ignored)."""

    def __init__(self):
        self.pressed = False
        self._previous = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        previous = signal.getsignal(signal.SIGINT)
        if previous is signal.SIG_IGN:
            return
        self._previous = previous
        signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, signum, frame) -> None:
        self.pressed = True
        raise KeyboardInterrupt

    def _raise_if_pressed(self, *args, **kwargs) -> None:
        if self.pressed:
            self.pressed = False
            raise KeyboardInterrupt

    on_train_batch_start = on_train_batch_end = _raise_if_pressed
    on_validation_batch_start = on_validation_batch_end = _raise_if_pressed
    on_train_epoch_end = on_validation_epoch_end = _raise_if_pressed

    def teardown(self, trainer, pl_module, stage: str) -> None:
        if self._previous is not None and signal.getsignal(signal.SIGINT) == self._on_sigint:
            signal.signal(signal.SIGINT, self._previous)
        self._previous = None
