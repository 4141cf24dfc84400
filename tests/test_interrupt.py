"""Ctrl-C inside a destructor is not lost: the next batch boundary raises it again."""

import signal

import pytest

from yolozoo.interrupt import CtrlC


class Dies:
    def __init__(self, on_del):
        self.on_del = on_del

    def __del__(self):
        self.on_del(signal.SIGINT, None)  # Python prints "Exception ignored in ..." and drops the interrupt


def test_an_interrupt_dropped_in_a_destructor_is_raised_at_the_next_batch():
    # a background job starts with SIGINT ignored, which CtrlC respects: begin from Python's own handler
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    cb = CtrlC()
    cb.setup(None, None, "fit")
    try:
        assert signal.getsignal(signal.SIGINT) == cb._on_sigint
        obj = Dies(cb._on_sigint)
        del obj  # the KeyboardInterrupt raised in __del__ is swallowed
        with pytest.raises(KeyboardInterrupt):
            cb.on_train_batch_end(None, None, None, None, 0)
        cb.on_train_batch_end(None, None, None, None, 1)  # once only
    finally:
        cb.teardown(None, None, "fit")
        restored = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGINT, outer)
    assert restored is signal.default_int_handler


def test_sigint_ignored_stays_ignored():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        cb = CtrlC()
        cb.setup(None, None, "fit")
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        cb.teardown(None, None, "fit")
    finally:
        signal.signal(signal.SIGINT, previous)
