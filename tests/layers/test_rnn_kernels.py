"""The recurrent engine's kernel calls off the CPU (`_rnn_kernels`), where there is no
GPU to run them: what can be checked on CPU with the off-CPU path."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch
from host_reads import off_the_cpu

from maskwise.layers import GRU, _rnn_kernels, cells
from maskwise.masked import Masked


def test_off_the_cpu_the_fused_kernels_do_not_warn_about_their_weight_copy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """cuDNN warns at every call whose weights are not one buffer (here: always); the
    recurrent layers silence that warning, and only it, off the CPU."""
    real_gru = cells.KERNELS["gru"]

    def cudnn_like_gru(*args: Any) -> Any:
        warnings.warn(_rnn_kernels.CUDNN_COPIES_WEIGHTS + ". This means ...", stacklevel=1)
        return real_gru(*args)

    monkeypatch.setitem(cells.KERNELS, "gru", cudnn_like_gru)
    layer = GRU(3, input_dim=2)
    x = Masked.from_lengths(torch.randn(2, 4, 2), torch.tensor([4, 2]))
    with off_the_cpu():
        layer(x)  # the suite turns warnings into errors: this would raise
    with pytest.warns(UserWarning, match="not part of single contiguous"):
        layer(x)  # on CPU nothing is silenced (no cuDNN there)
