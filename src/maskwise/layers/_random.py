"""Keras's `seed` argument of the layers that draw random numbers (dropout, noise, the
recurrent cells' dropout masks)."""

from __future__ import annotations

import torch

from ..errors import ConfigError, format_error


class SeededGenerator:
    """Where a layer's random draws come from under Keras's `seed`.

    `None`: PyTorch's global generator (`torch.manual_seed` sets it). An int: the
    layer's own generator, seeded once on the device of its first draw, so that a model
    built afresh draws the same masks from run to run while each call draws new ones, as
    Keras's `SeedGenerator` does. The values are not Keras's (the generators differ).

    Example:
        >>> draws = SeededGenerator("Dropout", 7)
        >>> first = torch.rand(3, generator=draws(torch.device("cpu")))
        >>> again = SeededGenerator("Dropout", 7)
        >>> torch.equal(first, torch.rand(3, generator=again(torch.device("cpu"))))
        True
        >>> SeededGenerator("Dropout", None)(torch.device("cpu")) is None  # the global one
        True
    """

    def __init__(self, owner: str, seed: object) -> None:
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise ConfigError(
                format_error(
                    f"{owner} seed must be an integer or None.",
                    received=repr(seed),
                    fix="pass an int (the draws repeat from run to run) or None (they "
                    "follow torch.manual_seed).",
                )
            )
        self.seed = seed
        self._generator: torch.Generator | None = None

    def __call__(self, device: torch.device) -> torch.Generator | None:
        """The generator to pass to `torch.rand`/`randn` for a draw on `device`."""
        if self.seed is None:
            return None
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device).manual_seed(self.seed)
        return self._generator
