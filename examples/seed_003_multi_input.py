"""Seed 003: "Keras mask experiments" — a multi-input GRU classifier, mask by mask.

Three inputs: numeric features through `Masking(0)`, two categorical ones (a version and
a "missing" flag) through `Embedding(mask_zero=True)`; `Concatenate`; three stacked GRUs;
`Dense(2)`; softmax. The seed's findings, shown on its own toy data (real steps 1 and 3
of 5: the masked steps [0, 2, 4] are not a trailing block) plus a second sequence whose
inputs disagree:

- the mask travels with each layer's output (the trace table lists it layer by layer);
- `Dense` after a mask computes the same values at the real steps as without it, and
  passes the mask on (maskwise reads padded steps as zeros, so NaN padding cannot leak);
- `Concatenate` masks a step masked in ANY input (mask AND);
- the GRU is where the mask acts: at a masked step the output repeats the previous
  step's output (0 before the first real step) and the state is carried over it;
- a second `Masking` after an `Embedding` warns: it would redefine the mask from values
  that are no longer zeros.

Run: `python examples/seed_003_multi_input.py`
"""

from __future__ import annotations

import warnings

import torch

import maskwise
from maskwise import Masked, Module, layers


class MultiInputGRU(Module):
    """The seed's model: `[num, version, missing] -> concat -> GRU x 3 -> Dense(2) -> softmax`."""

    def __init__(self, versions: int = 180, flags: int = 4, units: int = 3) -> None:
        super().__init__()
        self.num_mask = layers.Masking(0.0, name="M_num")
        self.version = layers.Embedding(versions, 2, mask_zero=True, name="M_version")
        self.missing = layers.Embedding(flags, 1, mask_zero=True, name="M_missing")
        self.concat = layers.Concatenate(name="concatenate")
        self.gru_1 = layers.GRU(units, return_sequences=True, name="gru_1")
        self.gru_2 = layers.GRU(units, return_sequences=True, name="gru_2")
        self.gru_3 = layers.GRU(units, name="gru_3")
        self.dense = layers.Dense(2, name="dense_ft")
        self.softmax = layers.Activation("softmax", name="outputs")

    def merged(self, num, version, missing) -> Masked:
        return self.concat([self.num_mask(num), self.version(version), self.missing(missing)])

    def forward(self, num, version, missing) -> Masked:
        x = self.gru_3(self.gru_2(self.gru_1(self.merged(num, version, missing))))
        return self.softmax(self.dense(x))


def toy_inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sequence 0 is the seed's (real steps 1 and 3 in every input). In sequence 1 the
    numeric input is real everywhere, the version hides step 4 and the flag step 0."""
    seed_num = [[0, 0, 0], [1, 2, 3], [0, 0, 0], [1, 2, 3], [0, 0, 0]]
    num = torch.tensor([seed_num, [[1, 2, 3]] * 5], dtype=torch.float32)
    version = torch.tensor([[0, 7, 0, 7, 0], [5, 7, 9, 7, 0]])
    missing = torch.tensor([[0, 1, 0, 1, 0], [0, 1, 2, 1, 3]])
    return num, version, missing


def main(seed: int = 0) -> dict[str, object]:
    torch.manual_seed(seed)
    model = MultiInputGRU()
    model.eval()
    num, version, missing = toy_inputs()
    with torch.no_grad():
        out = model(num, version, missing)
        merged = model.merged(num, version, missing)
        # Dense: the mask does not change its values at real steps; it passes on.
        dense = layers.Dense(4)
        with_mask = dense(merged)
        without_mask = dense(merged.with_mask(None))
        # GRU: a masked step repeats the previous output; the state goes over it.
        gru_out = model.gru_1(merged)
    steps = gru_out.values[0]
    carries = bool(
        torch.equal(steps[0], torch.zeros_like(steps[0]))
        and torch.equal(steps[2], steps[1])
        and torch.equal(steps[4], steps[3])
    )
    # Masking again after the embedding: warns, and the new mask unmasks padded steps.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        remasked = layers.Masking(0.0)(model.version(version))
    warning = next((str(w.message) for w in caught if w.category is maskwise.MaskWarning), "")
    table = str(maskwise.trace(model, num, version, missing))
    return {
        "input_masks": {
            "numeric": model.num_mask(num).mask.tolist(),
            "version": model.version(version).mask.tolist(),
            "missing": model.missing(missing).mask.tolist(),
        },
        "merged_mask": merged.mask.tolist(),
        "dense_same_at_real_steps": torch.equal(
            with_mask.values[merged.mask], without_mask.values[merged.mask]
        ),
        "dense_padded_steps_read_as_zeros": torch.equal(
            with_mask.values[~merged.mask], dense.bias.expand(int((~merged.mask).sum()), -1)
        ),
        "dense_passes_mask": torch.equal(with_mask.mask, merged.mask),
        "gru_1_outputs": gru_out.values[0].tolist(),
        "gru_carries_state_over_masked_steps": carries,
        "second_masking_warning": warning,
        "second_masking_mask": remasked.mask.tolist(),
        "output_shape": list(out.values.shape),
        "probabilities_sum_to_one": bool(
            torch.allclose(out.values.sum(-1), torch.ones(2), atol=1e-6)
        ),
        "trace_table": table,
    }


if __name__ == "__main__":
    r = main()
    for name, mask in r["input_masks"].items():
        print(f"mask of {name:8s} {mask}")
    print(f"after Concatenate  {r['merged_mask']}  (a step masked in any input is masked)")
    print(
        f"Dense passes the mask on: {r['dense_passes_mask']}; "
        f"same values at real steps as without a mask: {r['dense_same_at_real_steps']}"
    )
    print("gru_1 outputs, sequence 0 (masked steps 0, 2, 4 repeat the previous output):")
    for t, row in enumerate(r["gru_1_outputs"]):
        print(f"  step {t}: " + " ".join(f"{v:+.4f}" for v in row))
    print(f"\nsecond Masking after the Embedding warns:\n  {r['second_masking_warning']}")
    print(f"  and its mask unmasks the padding: {r['second_masking_mask']}")
    print(f"\noutput {r['output_shape']}, rows sum to 1: {r['probabilities_sum_to_one']}\n")
    print(r["trace_table"])
