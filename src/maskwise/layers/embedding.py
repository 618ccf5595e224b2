"""`Embedding`: token ids to vectors, and the mask of `mask_zero` padding."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, MaskwiseTypeError, format_error
from . import _host
from .base import Layer


class Embedding(Layer):
    """Look up a learned vector for every token id: `embeddings[tokens]`.

    Value rule: step t gets row `tokens[:, t]` of the table. Token ids at padded
    steps (where an incoming mask is False) are never read, so any value is allowed
    there; a real id outside `[0, input_dim)` raises a `ConfigError` (off the CPU, where
    the check reads nothing back to the host, a device-side assertion with the same
    message fails instead, at the host's next read). Mask rule: with
    `mask_zero=True` a step is real iff its token is not 0, combined (AND) with an
    incoming mask; otherwise the incoming mask passes on (Keras drops it).

    Example:
        >>> emb = Embedding(10, 4, mask_zero=True)
        >>> emb(torch.tensor([[3, 5, 0]])).mask.tolist()
        [[True, True, False]]

    Args:
        input_dim: vocabulary size; ids must lie in `[0, input_dim)`.
        output_dim: size of each vector.
        mask_zero: token 0 is padding and is masked.
        name: layer name.
        **keras_args: `embeddings_initializer` (Keras's default `"uniform"`, in
            `[-0.05, 0.05]`), `embeddings_regularizer`, `embeddings_constraint`, and the
            arguments of every layer (`maskwise.layers.Layer`; `input_length` is
            accepted and builds nothing: the table does not depend on it).
    Input: integer ids `(batch, time)`; output `(batch, time, output_dim)`.
    """

    weight_names = ("embeddings",)
    embeddings: nn.Parameter

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        *,
        mask_zero: bool = False,
        name: str | None = None,
        **keras_args: Any,
    ) -> None:
        super().__init__(name=name)
        for arg, value in (("input_dim", input_dim), ("output_dim", output_dim)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(
                    format_error(
                        f"Embedding {arg} must be a positive integer.", received=repr(value)
                    )
                )
        self.input_dim = input_dim
        self.output_dim = output_dim
        self.mask_zero = mask_zero
        self.add_weight("embeddings", (input_dim, output_dim), "uniform")
        self.built = True
        self.build_shape = []

    def call(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        tokens = self._token_ids(values)  # padded steps hold 0 (`Layer.prepare_values`)
        bad = (tokens < 0) | (tokens >= self.input_dim)
        self._refuse_any(
            bad,
            ConfigError,
            f"Embedding {self.name!r} got a token id outside its vocabulary.",
            expected=f"ids in [0, {self.input_dim}) (input_dim={self.input_dim})",
            received=lambda: (
                f"id {int(tokens[bad][0])} at position {tuple(torch.nonzero(bad)[0].tolist())}"
            ),
            fix="set input_dim to the vocabulary size (largest id + 1); pad with 0 "
            "(and mask_zero=True), not with -1 or IGNORE_INDEX.",
        )
        return nn.functional.embedding(tokens, self.embeddings)

    def _token_ids(self, values: torch.Tensor) -> torch.Tensor:
        if values.is_floating_point():
            self._refuse_any(
                values != values.round(),
                MaskwiseTypeError,
                f"Embedding {self.name!r} needs integer token ids.",
                received=lambda: f"{values.dtype} values that are not whole numbers",
                fix="pass the token ids as an integer tensor, e.g. `tokens.long()`.",
            )
        return values.long()

    @staticmethod
    def _refuse_any(
        bad: torch.Tensor,
        error: type[Exception],
        problem: str,
        *,
        received: Callable[[], str],
        fix: str,
        expected: str | None = None,
    ) -> None:
        """Raise `error` if any of `bad` is True. On CPU the check reads `bad` at once
        and the message says what was received. Elsewhere reading it would stall the
        host until the device catches up, so the device checks it instead
        (`_host.assert_none`, with the message less what was received): a failure
        then surfaces as a device-side assertion error at the host's next read. Inside
        `_host.exact_checks()` (the first batch of each epoch of `fit`) it reads `bad`
        on every device."""
        if _host.checks_read_host(bad.device):
            if bool(bad.any()):
                raise error(format_error(problem, expected=expected, received=received(), fix=fix))
        else:
            _host.assert_none(bad, format_error(problem, expected=expected, fix=fix))

    def compute_mask(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor | None:
        if not self.mask_zero:
            return mask
        real = values.reshape(values.shape[0], values.shape[1], -1).ne(0).any(dim=-1)
        return real if mask is None else real & mask
