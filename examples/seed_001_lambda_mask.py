"""Seed 001: "Masking layer has no effect" — a `Lambda` that drops the mask.

The seed's model, a stacked LSTM regression trained with MAE, ends with
`Lambda(lambda x: x[:, N:])`. In Keras that `Lambda` silently drops the mask, so the
training loss is the MAE over every step, padding included. In maskwise:

1. The same `Lambda` raises a `MaskError` at the first call: it changes the time axis
   and does not say what happens to the mask.
2. With `mask=lambda inputs, mask: mask[:, N:]` the loss equals the masked MAE computed
   by hand over the real steps, not the unmasked MAE.
3. Padding with NaN is harmless: `Masking(nan)` finds the padded steps, and the loss
   never multiplies NaN by 0, so the loss and its gradients stay finite and equal to the
   zero-padded run.
4. `model.fit(x, y[:, N:], batch_size=4)` trains it as Keras does: the targets are N
   steps shorter than the inputs, so the batches keep the full padded time axis.

Run: `python examples/seed_001_lambda_mask.py`
"""

from __future__ import annotations

import math

import numpy as np
import torch

from maskwise import MaskError, Sequential, layers
from maskwise.losses import get_loss

N = 5


def make_data(seed: int, samples: int = 12, timesteps: int = 30, features: int = 24):
    """Post-padded inputs `(samples, timesteps, features)` and targets `(.., timesteps - N, 1)`."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(N + 2, timesteps + 1, samples)
    lengths[0] = timesteps
    x = np.zeros((samples, timesteps, features), np.float32)
    y = np.zeros((samples, timesteps, 1), np.float32)
    for i, n in enumerate(lengths):
        x[i, :n] = rng.normal(size=(n, features))
        y[i, :n, 0] = np.cumsum(x[i, :n, 0]) / 10
    return x, y[:, N:], lengths


def stacked_lstm(lambda_mask=None, mask_value: float = 0.0) -> Sequential:
    return Sequential(
        [
            layers.Masking(mask_value),
            layers.LSTM(32, return_sequences=True),
            layers.LSTM(16, return_sequences=True),
            layers.LSTM(1, return_sequences=True),
            layers.Lambda(lambda x: x[:, N:], mask=lambda_mask),
        ]
    )


def main(seed: int = 0) -> dict[str, object]:
    torch.manual_seed(seed)
    x, y, lengths = make_data(seed)
    mae = get_loss("mae")

    # 1. The seed's Lambda, without a mask rule: maskwise refuses to drop the mask.
    try:
        stacked_lstm()(torch.from_numpy(x))
        error = ""
    except MaskError as exc:
        error = str(exc)

    # 2. With the mask rule the loss is the masked MAE.
    model = stacked_lstm(lambda_mask=lambda inputs, mask: mask[:, N:])
    with torch.no_grad():
        out = model(torch.from_numpy(x))
        loss = float(mae(y, out))
    pred = out.values.numpy()
    real = ~(x[:, N:] == 0).all(axis=2)  # the seed's own "w mask" selection
    # What compile/evaluate report is the same masked MAE, in batches of any size (the
    # targets are N steps shorter than the inputs: the batches keep the full time axis).
    model.compile("adam", loss="mae")
    evaluate_loss = model.evaluate(x, y, batch_size=4, verbose=0)["loss"]
    masked_by_hand = float(np.abs(y[real] - pred[real]).mean())
    unmasked_by_hand = float(np.abs(y - pred).mean())

    # 3. NaN padding in inputs and targets: same loss, finite gradients.
    x_nan, y_nan = x.copy(), y.copy()
    for i, n in enumerate(lengths):
        x_nan[i, n:] = np.nan
        y_nan[i, max(n - N, 0) :] = np.nan
    nan_model = stacked_lstm(lambda_mask=lambda inputs, mask: mask[:, N:], mask_value=math.nan)
    with torch.no_grad():
        nan_model(torch.from_numpy(x))  # build, then copy the weights of `model`
    nan_model.load_state_dict(model.state_dict())
    nan_loss = mae(y_nan, nan_model(torch.from_numpy(x_nan)))
    nan_loss.backward()
    grads_finite = all(
        bool(torch.isfinite(p.grad).all()) for p in nan_model.parameters() if p.grad is not None
    )

    # 4. fit in batches of 4, as the seed's model is trained in Keras.
    fit_losses = model.fit(x, y, batch_size=4, epochs=3, verbose=0).history["loss"]
    return {
        "error": error,
        "loss": loss,
        "evaluate_loss": evaluate_loss,
        "masked_mae_by_hand": masked_by_hand,
        "unmasked_mae_by_hand": unmasked_by_hand,
        "nan_padding_loss": nan_loss.item(),
        "nan_padding_grads_finite": grads_finite,
        "fit_losses": fit_losses,
        "real_steps": int(real.sum()),
        "all_steps": int(real.size),
    }


if __name__ == "__main__":
    torch.set_num_threads(1)  # a small recurrent model: one thread is fastest
    r = main()
    print("1. Lambda(lambda x: x[:, N:]) without mask= raises:\n")
    print("   " + r["error"].replace("\n", "\n   ") + "\n")
    print(
        f"2. With mask=lambda inputs, mask: mask[:, N:] ({r['real_steps']} real steps "
        f"of {r['all_steps']}):"
    )
    print(f"   loss                      {r['loss']:.6f}")
    print(f"   model.evaluate loss       {r['evaluate_loss']:.6f}")
    print(f"   masked MAE by hand        {r['masked_mae_by_hand']:.6f}")
    print(f"   unmasked MAE by hand      {r['unmasked_mae_by_hand']:.6f}  (what Keras reports)")
    print("3. NaN padding in inputs and targets, Masking(nan):")
    print(f"   loss                      {r['nan_padding_loss']:.6f}")
    print(f"   gradients finite          {r['nan_padding_grads_finite']}")
    print("4. model.fit(x, y, batch_size=4, epochs=3), loss per epoch:")
    print("   " + "  ".join(f"{loss:.6f}" for loss in r["fit_losses"]))
