"""Masked metrics, accumulated exactly over an epoch.

A metric sees only the steps the model's output marks as real (`y_pred.mask`; a plain
tensor means every step is real), weighted by `sample_weight` when given. It keeps
sums and counts (in float64), never an average of batch averages, so a metric over two
batches of different sizes equals the metric over their concatenation.

Interface (Keras's): `reset()`, `update(y_true, y_pred, sample_weight=None)`, `result()`,
`name`; Keras's names `reset_state` and `update_state` are the same methods, and calling
a metric updates it and returns `result()`. The argument order is Keras's, `(y_true,
y_pred)`, and arguments evidently swapped are an error (see `maskwise.losses`).
`result()` is a float for the mean metrics and for Keras's `Precision` and `Recall` (a
list for several `thresholds`) and `F1Score` / `FBetaScore` (a list, one per unit, with
Keras's `average=None`), a dict `{"<name>/<class>": value, ..., "<name>_macro": value}`
for the per-class `Precision`, `Recall`, `F1Score` and `FBetaScore` (class ids against
several output units, or `per_class=True`), and a nested list (rows = true class,
columns = predicted class) for `ConfusionMatrix`.

Like Keras, a weighted mean metric divides by the sum of the weights of the real steps
(`sum(value * weight) / sum(weight)`), which is Keras 3's metric with
`sample_weight=mask * sample_weight`.

Over zero real steps (every sequence of length 0, or every weight 0) each metric has a
defined value, never NaN, as in Keras 3 (its `divide_no_nan`): the mean metrics give
0.0 (as Keras's `Precision` and `Recall`), the per-class metrics give 0.0 for every
class and for the macro average, `ConfusionMatrix` a matrix of zeros; `fit` and
`evaluate` log a loss of 0.0.
A NaN would poison every later comparison (`EarlyStopping`, `ModelCheckpoint`). Before
any update, the per-class metrics know their classes only from `num_classes`: without
it they give `{}` (and `ConfusionMatrix` `[]`).

A real step whose scores hold NaN (a diverged model) is a wrong prediction in every
classification metric, where `argmax` would read it as class 0: wrong for the
accuracies, a miss of its true class for `Recall` (and `F1Score`), no class's
prediction for `Precision`, and `ConfusionMatrix.unscored()` rather than a column.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from . import losses
from .errors import ConfigError, MaskwiseTypeError, format_error
from .layers._keras_args import FLOAT_DTYPES, dtype_name
from .losses import class_targets, dense_targets, read_pair
from .masked import Masked

__all__ = [
    "AUC",
    "Accuracy",
    "BinaryAccuracy",
    "BinaryCrossentropy",
    "CategoricalAccuracy",
    "CategoricalCrossentropy",
    "ConfusionMatrix",
    "F1Score",
    "FBetaScore",
    "LogCoshError",
    "MeanAbsoluteError",
    "MeanAbsolutePercentageError",
    "MeanMetric",
    "MeanSquaredError",
    "MeanSquaredLogarithmicError",
    "Metric",
    "Precision",
    "Recall",
    "RootMeanSquaredError",
    "SparseCategoricalAccuracy",
    "SparseCategoricalCrossentropy",
    "TopKAccuracy",
    "get_metric",
]


def _step_weights(real: torch.Tensor, sample_weight: Any) -> torch.Tensor:
    """float64 weight per step: 0 at padded steps, the sample weight (or 1) at real ones."""
    weight = losses.step_weights(sample_weight, real.shape, real.device, torch.float64)
    ones = torch.ones(real.shape, dtype=torch.float64, device=real.device)
    if weight is not None:
        ones = ones * losses.broadcast_weight(weight, real.shape)
    return torch.where(real, ones, torch.zeros_like(ones))


def _is_binary(values: torch.Tensor, mask: torch.Tensor | None) -> bool:
    """One output unit per step (or no unit axis at all): a binary classifier."""
    return values.shape[-1] == 1 or values.dim() == 1 or (mask is not None and values.dim() == 2)


def _hit(right: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """1.0 where a step's prediction is right, 0.0 where not or where its scores hold
    NaN: `argmax` reads NaN as the highest score, which would make a diverged model's
    NaN output count as class 0 (right wherever the target is 0)."""
    return (right & ~scores.isnan().any(-1)).to(scores.dtype)


class Metric:
    """Base class: `reset`, `update`, `result` and a `name`.

    Subclasses implement `reset`, `result` and `accumulate(values, y_true, mask,
    sample_weight)`, which `update` calls with the model output's values and mask and the
    targets as a tensor, once the arguments are checked.

    Example:
        >>> class RealSteps(Metric):  # counts the real steps seen
        ...     default_name = "real_steps"
        ...     def reset(self):
        ...         self.steps = 0
        ...     def accumulate(self, values, y_true, mask, sample_weight):
        ...         self.steps += int(mask.sum())
        ...     def result(self):
        ...         return self.steps
        >>> m = RealSteps()
        >>> m.update(torch.zeros(2, 3), Masked(torch.zeros(2, 3, 1), lengths_to_mask([3, 1], 3)))
        >>> m.update(torch.zeros(1, 3), Masked(torch.zeros(1, 3, 1), lengths_to_mask([2], 3)))
        >>> m.result(), m.name
        (6, 'real_steps')

    Args:
        dtype: the float dtype the metric computes in (`"float32"`, `torch.float64`, ...):
            the predictions are cast to it (the totals are kept in float64); None
            (default) computes in theirs.
        name: the metric's name (defaults to the Keras name).
    """

    default_name = "metric"
    labels = True
    """The targets are classes: lets `read_pair` check the argument order on 0/1 values."""

    def __init__(self, dtype: Any = None, name: str | None = None) -> None:
        if name is not None and not isinstance(name, str):
            raise ConfigError(
                format_error(
                    f"{type(self).__name__}: name must be a string.",
                    received=repr(name),
                    fix="pass the metric's other arguments by keyword, e.g. "
                    "`SparseCategoricalCrossentropy(from_logits=True)` (Keras's first "
                    "argument is the name).",
                )
            )
        self.name = name or self.default_name
        self.dtype = None if dtype is None else dtype_name(type(self).__name__, dtype)
        self.reset()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    def reset(self) -> None:
        """Forget everything accumulated (call at the start of each epoch)."""
        raise NotImplementedError

    def reset_state(self) -> None:
        """Keras's name for `reset`."""
        self.reset()

    @torch.no_grad()
    def update(self, y_true: Any, y_pred: Masked | torch.Tensor, sample_weight: Any = None) -> None:
        """Accumulate one batch, in Keras's order: `y_true` the targets, `y_pred` the
        model's output, `sample_weight` `(batch,)` or `(batch, time)`."""
        usage = f"{type(self).__name__}().update(y_true, y_pred)"
        values, mask, targets = read_pair(y_true, y_pred, usage, self.labels)
        if self.dtype is not None:
            values = values.to(FLOAT_DTYPES[self.dtype])
        self.accumulate(values, targets, mask, sample_weight)

    update_state = update
    """Keras's name for `update`."""

    def __call__(
        self, y_true: Any, y_pred: Masked | torch.Tensor, sample_weight: Any = None
    ) -> Any:
        """`update` with one batch, then `result()` (as a Keras metric's call)."""
        self.update(y_true, y_pred, sample_weight)
        return self.result()

    def accumulate(
        self,
        values: torch.Tensor,
        y_true: torch.Tensor,
        mask: torch.Tensor | None,
        sample_weight: Any,
    ) -> None:
        """Add one checked batch: `values` and `mask` from `y_pred`, targets a tensor."""
        raise NotImplementedError

    def result(self) -> Any:
        raise NotImplementedError


class MeanMetric(Metric):
    """A weighted mean over real steps of a per-step value.

    Subclasses implement `per_step(values, y_true, mask) -> (value, real)` (step shape).

    Example:
        >>> class MeanPrediction(MeanMetric):
        ...     labels = False  # the targets are not class ids
        ...     def per_step(self, values, y_true, mask):
        ...         return values.mean(-1), mask
        >>> m = MeanPrediction()
        >>> y_pred = Masked(torch.tensor([[[1.0], [3.0], [100.0]]]), lengths_to_mask([2], 3))
        >>> m.update(torch.zeros(1, 3, 1), y_pred)
        >>> m.result()  # (1 + 3) / 2: the padded 100 is never read
        2.0

    Args:
        name: the metric's name (Keras's first argument).
        dtype: see `Metric`.
    """

    def __init__(self, name: str | None = None, dtype: Any = None) -> None:
        super().__init__(dtype=dtype, name=name)

    def reset(self) -> None:
        self.total: torch.Tensor | float = 0.0
        self.count: torch.Tensor | float = 0.0

    def per_step(
        self, values: torch.Tensor, y_true: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def accumulate(self, values, y_true, mask, sample_weight):
        value, real = self.per_step(values, y_true, mask)
        weight = _step_weights(real, sample_weight)
        weighted = torch.where(real, value.to(torch.float64) * weight, torch.zeros_like(weight))
        self.total = self.total + weighted.sum()
        self.count = self.count + weight.sum()

    def result(self) -> float:
        """The weighted mean over every real step seen since `reset` (0.0 if none)."""
        count = float(self.count)
        return float(self.total) / count if count else 0.0


class SparseCategoricalAccuracy(MeanMetric):
    """Fraction of real steps whose highest score is the target class id.

    Example:
        >>> m = SparseCategoricalAccuracy()
        >>> m.update(torch.tensor([[0, -100]]),
        ...          Masked(torch.eye(2).expand(1, 2, 2), lengths_to_mask([1], 2)))
        >>> m.result()
        1.0
    """

    default_name = "sparse_categorical_accuracy"

    def per_step(self, values, y_true, mask):
        scores, ids, real = class_targets(values, y_true, mask, self.name)
        return _hit(scores.argmax(-1) == ids, scores), real


class CategoricalAccuracy(MeanMetric):
    """Fraction of real steps whose highest score is the one-hot target's class.

    Example:
        >>> m = CategoricalAccuracy()
        >>> scores = torch.tensor([[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]])
        >>> m.update(torch.tensor([[[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]]]),
        ...          Masked(scores, lengths_to_mask([2], 3)))
        >>> m.result()  # step 0 right, step 1 wrong, step 2 padding
        0.5
    """

    default_name = "categorical_accuracy"

    def per_step(self, values, y_true, mask):
        preds, targets, real = dense_targets(values, y_true, mask, self.name)
        return _hit(preds.argmax(-1) == targets.argmax(-1), preds), real


class BinaryAccuracy(MeanMetric):
    """Fraction of outputs where `(y_pred > threshold)` equals the 0/1 target, at real steps.

    Averaged over the output units of a step first (Keras's `binary_accuracy`).

    Example:
        >>> m = BinaryAccuracy()
        >>> y_pred = Masked(torch.tensor([[[0.9], [0.3], [0.7]]]), lengths_to_mask([2], 3))
        >>> m.update(torch.tensor([[1.0, 1.0, float("nan")]]), y_pred)
        >>> m.result()  # 0.9 > 0.5 says 1 (right), 0.3 says 0 (wrong); step 2 is padding
        0.5

    Args:
        name: the metric's name.
        dtype: see `Metric`.
        threshold: the decision threshold on the predictions.
    """

    default_name = "binary_accuracy"

    def __init__(self, name: str | None = None, dtype: Any = None, threshold: float = 0.5) -> None:
        if isinstance(threshold, bool) or not isinstance(threshold, int | float):
            raise ConfigError(
                format_error(
                    "BinaryAccuracy threshold must be a number.",
                    received=repr(threshold),
                    fix="Keras's order is (name, dtype, threshold): pass it as threshold=.",
                )
            )
        self.threshold = threshold
        super().__init__(name, dtype)

    def per_step(self, values, y_true, mask):
        preds, targets, real = dense_targets(values, y_true, mask, self.name)
        right = ((preds > self.threshold).to(preds.dtype) == targets) & ~preds.isnan()
        return right.to(preds.dtype).mean(-1), real


class TopKAccuracy(MeanMetric):
    """Fraction of real steps whose target class is among the `k` highest scores.

    The targets are class ids (Keras's `sparse_top_k_categorical_accuracy`) or one-hot
    rows shaped like the scores (Keras's `top_k_categorical_accuracy`: the class is the
    row's argmax). As in Keras, a tie with the k-th score counts.

    Example:
        >>> m = TopKAccuracy(k=2)
        >>> scores = torch.tensor([[[0.5, 0.3, 0.2], [0.5, 0.3, 0.2], [0.1, 0.1, 0.8]]])
        >>> m.update(torch.tensor([[1, 2, -100]]), Masked(scores, lengths_to_mask([2], 3)))
        >>> m.result()  # class 1 is in step 0's top 2, class 2 not in step 1's
        0.5
        >>> m.reset()
        >>> one_hot = torch.eye(3)[torch.tensor([[1, 2, 0]])]
        >>> m.update(one_hot, Masked(scores, lengths_to_mask([2], 3)))
        >>> m.result()  # the same classes, one-hot
        0.5

    Args:
        k: how many of the highest scores count.
        name: the metric's name.
        dtype: see `Metric`.
    """

    default_name = "top_k_accuracy"

    def __init__(self, k: int = 5, name: str | None = None, dtype: Any = None) -> None:
        if not isinstance(k, int) or k < 1:
            raise ConfigError(
                format_error("TopKAccuracy k must be a positive integer.", received=repr(k))
            )
        self.k = k
        super().__init__(name, dtype)

    def per_step(self, values, y_true, mask):
        if y_true.shape == values.shape and values.shape[-1] > 1:  # one-hot rows
            scores, one_hot, real = dense_targets(values, y_true, mask, self.name)
            ids = one_hot.argmax(-1)
        else:
            scores, ids, real = class_targets(values, y_true, mask, self.name)
        kth = scores.topk(min(self.k, scores.shape[-1]), dim=-1).values[..., -1]
        target_score = scores.gather(-1, ids.unsqueeze(-1)).squeeze(-1)
        return _hit(target_score >= kth, scores), real


class Accuracy(MeanMetric):
    """Keras's `"accuracy"`: resolved at the first update from the shapes, as Keras does.

    One output unit: `BinaryAccuracy` (threshold 0.5); targets with one axis less than
    the predictions (class ids): `SparseCategoricalAccuracy`; targets shaped like the
    predictions: `CategoricalAccuracy`.

    Example:
        >>> m = Accuracy()  # class ids, one axis less than the scores: sparse categorical
        >>> scores = torch.tensor([[[0.2, 0.8], [0.7, 0.3], [0.5, 0.5]]])
        >>> m.update(torch.tensor([[1, 1, -100]]), Masked(scores, lengths_to_mask([2], 3)))
        >>> m.result()
        0.5
    """

    default_name = "accuracy"

    def reset(self) -> None:
        super().reset()
        self.resolved: MeanMetric | None = getattr(self, "resolved", None)

    def per_step(self, values, y_true, mask):
        if self.resolved is None:
            if _is_binary(values, mask):
                self.resolved = BinaryAccuracy(name=self.name)
            elif y_true.dim() < values.dim() or y_true.shape[-1] == 1:
                self.resolved = SparseCategoricalAccuracy(name=self.name)
            else:
                self.resolved = CategoricalAccuracy(name=self.name)
        return self.resolved.per_step(values, y_true, mask)


class _LossMean(MeanMetric):
    """The weighted mean over real steps of a regression loss's per-step value
    (`loss_class`, Keras's metric of the same formula)."""

    labels = False
    loss_class: type[losses.Loss]

    def per_step(self, values, y_true, mask):
        value, real, _ = self.loss_class(name=self.name).per_step(values, y_true, mask)
        return value, real


class MeanAbsoluteError(_LossMean):
    """Mean over real steps of each step's mean `|y_pred - y_true|` (Keras's `mae`).

    Example:
        >>> m = MeanAbsoluteError()
        >>> y_pred = Masked(torch.tensor([[[1.0, 3.0], [5.0, 5.0]]]), lengths_to_mask([1], 2))
        >>> m.update(torch.zeros(1, 2, 2), y_pred)
        >>> m.result()  # (|1| + |3|) / 2 at the one real step
        2.0
    """

    default_name = "mean_absolute_error"

    loss_class = losses.MeanAbsoluteError


class MeanSquaredError(_LossMean):
    """Mean over real steps of each step's mean `(y_pred - y_true) ** 2` (Keras's `mse`).

    Example:
        >>> m = MeanSquaredError()
        >>> y_true = torch.zeros(1, 2, 1)
        >>> m.update(y_true, Masked(torch.tensor([[[2.0], [9.0]]]), lengths_to_mask([1], 2)))
        >>> m.update(y_true, Masked(torch.tensor([[[0.0], [1.0]]]), lengths_to_mask([2], 2)))
        >>> m.result()  # (4 + 0 + 1) / 3 real steps, over both batches
        1.666...
    """

    default_name = "mean_squared_error"

    loss_class = losses.MeanSquaredError


class MeanAbsolutePercentageError(_LossMean):
    """Mean over real steps of each step's `MeanAbsolutePercentageError` loss (Keras's
    `mape`): `100 * |y_pred - y_true| / max(|y_true|, 1e-7)`, averaged over the last axis.

    Example:
        >>> m = MeanAbsolutePercentageError()
        >>> y_pred = Masked(torch.tensor([[[3.0], [0.0]]]), lengths_to_mask([1], 2))
        >>> m.update(torch.tensor([[[2.0], [float("nan")]]]), y_pred)
        >>> m.result()  # 100 * |3 - 2| / 2 at the real step; the NaN target is padding
        50.0
    """

    default_name = "mean_absolute_percentage_error"

    loss_class = losses.MeanAbsolutePercentageError


class MeanSquaredLogarithmicError(_LossMean):
    """Mean over real steps of each step's `MeanSquaredLogarithmicError` loss (Keras's
    `msle`): `(log(max(y_pred, 1e-7) + 1) - log(max(y_true, 1e-7) + 1)) ** 2`, averaged
    over the last axis.

    Example:
        >>> m = MeanSquaredLogarithmicError()
        >>> y_pred = Masked(torch.tensor([[[3.0], [0.0]]]), lengths_to_mask([1], 2))
        >>> m.update(torch.tensor([[[1.0], [float("nan")]]]), y_pred)
        >>> m.result()  # (log 4 - log 2) ** 2 at the real step; the NaN target is padding
        0.4804...
    """

    default_name = "mean_squared_logarithmic_error"

    loss_class = losses.MeanSquaredLogarithmicError


class LogCoshError(_LossMean):
    """Mean over real steps of each step's `LogCosh` loss (Keras's `LogCoshError` metric,
    named `logcosh`): `log(cosh(y_pred - y_true))`, averaged over the last axis.

    Example:
        >>> m = LogCoshError()
        >>> y_pred = Masked(torch.tensor([[[1.0], [0.0]]]), lengths_to_mask([1], 2))
        >>> m.update(torch.tensor([[[0.0], [float("nan")]]]), y_pred)
        >>> m.result()  # log(cosh(1)) at the real step; the NaN target is padding
        0.4337...
    """

    default_name = "logcosh"

    loss_class = losses.LogCosh


class RootMeanSquaredError(MeanSquaredError):
    """The square root of `MeanSquaredError` over every real step seen (Keras's
    `RootMeanSquaredError`): the root of the whole mean, not a mean of batch roots.

    Example:
        >>> m = RootMeanSquaredError()
        >>> y_pred = Masked(torch.tensor([[[3.0], [4.0], [99.0]]]), lengths_to_mask([2], 3))
        >>> m.update(torch.zeros(1, 3, 1), y_pred)
        >>> m.result()  # sqrt((9 + 16) / 2): the padded 99 is never read
        3.535...
    """

    default_name = "root_mean_squared_error"

    def result(self) -> float:
        return math.sqrt(super().result())


class _CrossentropyMean(MeanMetric):
    """The weighted mean over real steps of a cross-entropy loss's per-step value
    (Keras's cross-entropy metrics, with their arguments: `name` first, the others by
    keyword).

    Args:
        name: the metric's name.
        dtype: see `Metric`.
        from_logits: the predictions are logits.
    """

    def __init__(
        self, name: str | None = None, dtype: Any = None, *, from_logits: bool = False
    ) -> None:
        self.from_logits = from_logits
        super().__init__(name, dtype)

    def loss(self) -> losses.Loss:
        """The loss whose per-step value this metric averages."""
        raise NotImplementedError

    def per_step(self, values, y_true, mask):
        value, real, _ = self.loss().per_step(values, y_true, mask)
        return value, real


class SparseCategoricalCrossentropy(_CrossentropyMean):
    """Mean over real steps of the cross-entropy of class-id targets (Keras's metric).

    `ignore_class` (Keras's argument): the steps whose target is that value count as
    padding, as in `maskwise.losses.SparseCategoricalCrossentropy`; Keras's metric leaves
    them out too when the output has a mask or there are sample weights, and otherwise
    averages them in as zeros (see docs/coming-from-keras.md).

    Example:
        >>> m = SparseCategoricalCrossentropy(ignore_class=255)
        >>> probs = Masked(torch.tensor([[[0.5, 0.5], [0.9, 0.1], [0.2, 0.8]]]))
        >>> m.update(torch.tensor([[0, 255, 1]]), probs)
        >>> m.result()  # -(log 0.5 + log 0.8) / 2: step 1 is left out
        0.4581...

    Args:
        name: the metric's name.
        dtype: see `Metric`.
        from_logits: the predictions are logits.
        ignore_class: a target value whose steps do not count (an integer), or None.
    """

    default_name = "sparse_categorical_crossentropy"

    def __init__(
        self,
        name: str | None = None,
        dtype: Any = None,
        *,
        from_logits: bool = False,
        ignore_class: int | None = None,
    ) -> None:
        self.ignore_class = losses.SparseCategoricalCrossentropy(
            ignore_class=ignore_class
        ).ignore_class
        super().__init__(name, dtype, from_logits=from_logits)

    def loss(self) -> losses.Loss:
        return losses.SparseCategoricalCrossentropy(
            from_logits=self.from_logits, ignore_class=self.ignore_class, name=self.name
        )


class _SmoothedCrossentropyMean(_CrossentropyMean):
    """`CategoricalCrossentropy` and `BinaryCrossentropy`: `label_smoothing` too.

    Args:
        name: the metric's name.
        dtype: see `Metric`.
        from_logits: the predictions are logits.
        label_smoothing: in [0, 1]; as the loss of the same name.
    """

    labels = False
    loss_class: type[losses.CategoricalCrossentropy | losses.BinaryCrossentropy]

    def __init__(
        self,
        name: str | None = None,
        dtype: Any = None,
        *,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
    ) -> None:
        self.label_smoothing = label_smoothing
        super().__init__(name, dtype, from_logits=from_logits)

    def loss(self) -> losses.Loss:
        return self.loss_class(
            from_logits=self.from_logits, label_smoothing=self.label_smoothing, name=self.name
        )


class CategoricalCrossentropy(_SmoothedCrossentropyMean):
    """Mean over real steps of the cross-entropy of one-hot targets (Keras's metric).

    Example:
        >>> m = CategoricalCrossentropy(label_smoothing=0.2)
        >>> probs = Masked(torch.tensor([[[0.5, 0.5], [0.9, 0.1]]]), lengths_to_mask([1], 2))
        >>> m.update(torch.tensor([[[1.0, 0.0], [0.0, 1.0]]]), probs)
        >>> m.result()  # -log 0.5 at the one real step, whatever the smoothing
        0.6931...
    """

    default_name = "categorical_crossentropy"
    loss_class = losses.CategoricalCrossentropy


class BinaryCrossentropy(_SmoothedCrossentropyMean):
    """Mean over real steps of the binary cross-entropy, averaged over the output units
    of a step first (Keras's metric).

    Example:
        >>> m = BinaryCrossentropy()
        >>> probs = Masked(torch.tensor([[[0.5], [0.9]]]), lengths_to_mask([1], 2))
        >>> m.update(torch.tensor([[1.0, float("nan")]]), probs)
        >>> m.result()  # -log 0.5 at the one real step
        0.6931...
    """

    default_name = "binary_crossentropy"
    loss_class = losses.BinaryCrossentropy


class _ConfusionCounts(Metric):
    """Accumulates the weighted confusion matrix `self.matrix`, `classes x (classes + 1)`:
    row = true class, column = predicted class, and a last column for the real steps
    whose scores hold NaN, which predict no class (see `ConfusionMatrix`)."""

    def __init__(
        self,
        num_classes: int | None = None,
        threshold: float = 0.5,
        name: str | None = None,
        dtype: Any = None,
    ) -> None:
        if num_classes is not None and (not isinstance(num_classes, int) or num_classes < 2):
            raise ConfigError(
                format_error("num_classes must be an integer >= 2.", received=repr(num_classes))
            )
        self.num_classes = num_classes
        self.threshold = threshold
        super().__init__(dtype=dtype, name=name)

    def reset(self) -> None:
        self.matrix: torch.Tensor | None = None

    def unit_threshold(self) -> float:
        """The decision threshold of a single output unit (classes 0 and 1)."""
        return self.threshold

    def accumulate(self, values, y_true, mask, sample_weight):
        if _is_binary(values, mask):
            preds, targets, real = dense_targets(values, y_true, mask, self.name)
            predicted = (preds[..., 0] > self.unit_threshold()).long()
            true = targets[..., 0].round().long().clamp(0, 1)
            classes, unscored = 2, preds[..., 0].isnan()
        else:
            scores, true, real = class_targets(values, y_true, mask, self.name)
            predicted, classes = scores.argmax(-1), scores.shape[-1]
            unscored = scores.isnan().any(-1)
        # `argmax` reads NaN as the highest score (class 0) and `NaN > threshold` as
        # class 0: NaN scores go to the last column, a prediction of no class.
        predicted = torch.where(unscored, classes, predicted)
        if self.num_classes is not None and classes != self.num_classes:
            raise ConfigError(
                format_error(
                    f"{self.name} was built for {self.num_classes} classes, but the model "
                    f"predicts {classes}.",
                    expected=f"predictions with {self.num_classes} scores per step",
                    received=f"predictions of shape {tuple(values.shape)}",
                    fix="pass the model's number of output classes as num_classes.",
                )
            )
        # A scatter-add into a zeroed matrix, where `bincount` would read the largest
        # pair back to the host to size its output (a stall off the CPU).
        pairs = (true * (classes + 1) + predicted).reshape(-1)
        weights = _step_weights(real, sample_weight).reshape(-1)
        counts = weights.new_zeros(classes * (classes + 1)).scatter_add_(0, pairs, weights)
        counts = counts.reshape(classes, classes + 1)
        self.matrix = counts if self.matrix is None else self.matrix + counts


class ConfusionMatrix(_ConfusionCounts):
    """Weighted counts of (true class, predicted class) pairs over real steps.

    The predicted class is the highest score, or `y_pred > threshold` for one output
    unit (classes 0 and 1). Targets are class ids (`IGNORE_INDEX` at padded steps).
    `result()` is a nested list `num_classes x num_classes` of floats: row = true class,
    column = predicted class.

    A real step whose scores hold NaN (a diverged model) predicts no class, where
    `argmax` would read it as class 0: it is not in `result()` but in `unscored()`,
    its weight per true class. It counts as a miss of its true class (lowering its
    recall) and as no class's prediction (leaving precision alone), as the accuracy
    metrics count it as wrong. The count stays on the device like the matrix.

    Example:
        >>> m = ConfusionMatrix()
        >>> scores = torch.tensor([[[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]]])
        >>> m.update(torch.tensor([[0, 1, 0, -100]]), Masked(scores, lengths_to_mask([3], 4)))
        >>> m.result()  # row: true class, column: predicted class; step 3 is padding
        [[1.0, 1.0], [0.0, 1.0]]
        >>> nan = torch.full((1, 1, 2), float("nan"))
        >>> m.update(torch.tensor([[1]]), Masked(nan, lengths_to_mask([1], 1)))
        >>> m.result(), m.unscored()  # a true class 1 with NaN scores
        ([[1.0, 1.0], [0.0, 1.0]], [0.0, 1.0])

    Args:
        num_classes: number of classes; inferred from the predictions when None (and
            checked against them when given).
        threshold: decision threshold for a single output unit.
        name: the metric's name.
        dtype: see `Metric`.
    """

    default_name = "confusion_matrix"

    def result(self) -> list[list[float]]:
        """Rows = true class, columns = predicted class (empty before any update)."""
        if self.matrix is None:
            size = self.num_classes or 0
            return [[0.0] * size for _ in range(size)]
        return self.matrix[:, :-1].tolist()

    def unscored(self) -> list[float]:
        """The weight of the real steps whose scores held NaN, per true class (zeros
        before any update if `num_classes` is given, else `[]`)."""
        if self.matrix is None:
            return [0.0] * (self.num_classes or 0)
        return self.matrix[:, -1].tolist()


class _PerClass(_ConfusionCounts):
    """A per-class score from the confusion matrix, and its macro average."""

    def score(self, matrix: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def result(self) -> dict[str, float]:
        """`{"<name>/<class>": score, ..., "<name>_macro": mean over classes}` (zeros
        before any update if `num_classes` is given, else `{}`)."""
        if self.matrix is None:
            if self.num_classes is None:
                return {}
            scores = [0.0] * self.num_classes
        else:
            scores = self.score(self.matrix).tolist()
        out = {f"{self.name}/{c}": value for c, value in enumerate(scores)}
        out[f"{self.name}_macro"] = sum(scores) / len(scores)
        return out


def _ratio(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """`numerator / denominator`, 0 where the denominator is 0 (Keras's divide_no_nan)."""
    safe = torch.where(denominator > 0, denominator, torch.ones_like(denominator))
    return torch.where(denominator > 0, numerator / safe, torch.zeros_like(numerator))


def _precision(matrix: torch.Tensor) -> torch.Tensor:
    """Per class of a `_ConfusionCounts` matrix: the steps predicted as the class
    (steps with NaN scores predict none)."""
    return _ratio(matrix.diagonal(), matrix[:, :-1].sum(0))


def _recall(matrix: torch.Tensor) -> torch.Tensor:
    """Per class of a `_ConfusionCounts` matrix: the steps of the class (with NaN
    scores, a miss)."""
    return _ratio(matrix.diagonal(), matrix.sum(1))


NEG_INF = -1e10
"""Keras's `metrics_utils.NEG_INF`: the score of a prediction outside the top k, and
the default threshold with `top_k` (every top-k prediction is a positive)."""


class _Thresholded(_PerClass):
    """`Precision` and `Recall`: Keras's metric (`keras.metrics.Precision`, ...) over
    the real steps, or maskwise's per-class scores; see `Precision` for which."""

    def __init__(
        self,
        thresholds: float | list[float] | None = None,
        top_k: int | None = None,
        class_id: int | None = None,
        name: str | None = None,
        dtype: Any = None,
        *,
        per_class: bool | None = None,
        num_classes: int | None = None,
        threshold: float = 0.5,
    ) -> None:
        kind = type(self).__name__
        keras_args = [
            f"{arg}={value!r}"
            for arg, value in (("thresholds", thresholds), ("top_k", top_k), ("class_id", class_id))
            if value is not None
        ]
        if keras_args and (per_class or num_classes is not None):
            raise ConfigError(
                format_error(
                    f"{kind}: Keras's arguments choose Keras's binary metric, and "
                    "per_class / num_classes maskwise's per-class one; pass one or the other.",
                    received=", ".join(keras_args)
                    + (", per_class=True" if per_class else f", num_classes={num_classes}"),
                    fix=f"`{kind}(class_id=c)` for class c as Keras computes it, or "
                    f"`{kind}(per_class=True)` for every class and the macro average.",
                )
            )
        if per_class is False and num_classes is not None:
            raise ConfigError(
                format_error(
                    f"{kind}: num_classes is an argument of the per-class metric.",
                    received=f"per_class=False, num_classes={num_classes}",
                    fix="drop num_classes (Keras's metric counts every output unit).",
                )
            )
        self.thresholds = _check_thresholds(kind, thresholds, top_k)
        self.top_k = _check_index(kind, "top_k", top_k, minimum=1)
        self.class_id = _check_index(kind, "class_id", class_id, minimum=0)
        if per_class is None and (keras_args or num_classes is not None):
            per_class = not keras_args
        self.per_class = per_class
        super().__init__(num_classes, threshold, name, dtype)

    def binary_score(self, tp: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def accumulate(self, values, y_true, mask, sample_weight):
        if self.per_class is None:  # fixed by the first update, as Accuracy's choice
            self.per_class = _ids_for_units(values, y_true, mask)
        if self.per_class:
            super().accumulate(values, y_true, mask, sample_weight)
            return
        preds, targets, real = _unit_steps(values, y_true, mask, self.name)
        labels = targets != 0  # Keras casts the labels to bool
        weight = _step_weights(real, sample_weight).unsqueeze(-1).expand(preds.shape)
        if self.top_k is not None:
            kept = preds.topk(min(self.top_k, preds.shape[-1]), dim=-1).indices
            top = torch.zeros_like(labels).scatter_(-1, kept, True)
            preds = torch.where(top, preds, torch.full_like(preds, NEG_INF))
        if self.class_id is not None:
            if self.class_id >= preds.shape[-1]:
                raise ConfigError(
                    format_error(
                        f"{self.name}: class_id={self.class_id} is not one of the "
                        f"{preds.shape[-1]} output units.",
                        expected=f"class_id in 0..{preds.shape[-1] - 1}",
                        received=f"predictions of shape {tuple(values.shape)}",
                    )
                )
            keep = slice(self.class_id, self.class_id + 1)
            preds, labels, weight = preds[..., keep], labels[..., keep], weight[..., keep]
        thresholds = torch.tensor(self.thresholds, dtype=preds.dtype, device=preds.device)
        positive = preds.reshape(1, -1) > thresholds.unsqueeze(-1)  # (thresholds, units)
        labels, weight = labels.reshape(1, -1), weight.reshape(1, -1)
        cells = [(~labels & ~positive), (~labels & positive), (labels & ~positive)]
        cells.append(labels & positive)
        counts = torch.stack([(weight * cell).sum(-1) for cell in cells], -1)
        counts = counts.reshape(-1, 2, 2)  # rows: true 0 / 1, columns: predicted 0 / 1
        self.matrix = counts if self.matrix is None else self.matrix + counts

    def result(self) -> Any:
        """Keras's metric: a float (a list, one per threshold, for several thresholds;
        0.0 before any update). Per class: `{"<name>/<class>": score, ...,
        "<name>_macro": mean over classes}` (zeros before any update if `num_classes`
        is given, else `{}`, as before the first update decides)."""
        if self.per_class is not False:
            return super().result()
        if self.matrix is None:
            scores = [0.0] * len(self.thresholds)
        else:
            m = self.matrix
            scores = self.binary_score(m[:, 1, 1], m[:, 0, 1], m[:, 1, 0]).tolist()
        return scores[0] if len(scores) == 1 else scores


def _unit_steps(
    values: torch.Tensor, y_true: torch.Tensor, mask: torch.Tensor | None, name: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`(predictions, targets, real)` for Keras's metrics that read every output unit as
    a binary prediction: predictions and targets `(..., units)` (class ids one-hot
    encoded), the real steps `(...)`."""
    if _ids_for_units(values, y_true, mask):
        scores, ids, real = class_targets(values, y_true, mask, name)
        one_hot = torch.nn.functional.one_hot(ids, scores.shape[-1]).to(scores.dtype)
        return scores, one_hot, real
    return dense_targets(values, y_true, mask, name)


def _ids_for_units(values: torch.Tensor, y_true: torch.Tensor, mask: torch.Tensor | None) -> bool:
    """Class ids against several output units, which Keras's `Precision`, `Recall` and
    `FBetaScore` do not take (their targets are shaped like the predictions)."""
    return not _is_binary(values, mask) and _holds_class_ids(values, y_true)


def _holds_class_ids(values: torch.Tensor, y_true: torch.Tensor) -> bool:
    """The targets are class ids for scores `(..., classes)`: one axis less (or a
    trailing axis of 1), not a row per step shaped like the scores."""
    if values.dim() < 2 or values.shape[-1] == 1:
        return False
    if y_true.dim() == values.dim() and y_true.shape[-1] == 1:
        return True
    return y_true.dim() == values.dim() - 1


def _check_thresholds(kind: str, thresholds: Any, top_k: int | None) -> list[float]:
    """Keras's thresholds: one float or a list in [0, 1]; default 0.5, or `NEG_INF`
    with `top_k`."""
    if thresholds is None:
        return [0.5 if top_k is None else NEG_INF]
    listed = list(thresholds) if isinstance(thresholds, list | tuple) else [thresholds]
    if listed and all(
        isinstance(t, int | float) and not isinstance(t, bool) and 0.0 <= t <= 1.0 for t in listed
    ):
        return [float(t) for t in listed]
    fix = "e.g. thresholds=0.5, or thresholds=[0.3, 0.5, 0.7] for one value each."
    if isinstance(thresholds, int) and not isinstance(thresholds, bool) and thresholds > 1:
        fix = (
            f"the first argument is Keras's `thresholds`; for the number of classes of "
            f"the per-class metric pass `{kind}(per_class=True, num_classes={thresholds})`."
        )
    raise ConfigError(
        format_error(
            f"{kind}: thresholds must be numbers in [0, 1].",
            received=repr(thresholds),
            fix=fix,
        )
    )


def _check_index(kind: str, arg: str, value: Any, minimum: int) -> int | None:
    """`top_k` or `class_id` checked to be an integer >= `minimum` (or None)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(
            format_error(f"{kind}: {arg} must be an integer >= {minimum}.", received=repr(value))
        )
    return value


class Precision(_Thresholded):
    """Precision (true positives / predicted positives) over real steps: Keras's
    `keras.metrics.Precision`, or per class.

    Keras's metric, a float (as Keras's, over the real steps): every output unit is a
    binary prediction, positive where it is above `thresholds` (0.5), against targets
    shaped like the predictions (0/1 labels, one-hot or multi-label rows; any nonzero
    is 1), or class ids, one-hot encoded. `top_k` keeps each step's k highest units
    only, `class_id` one unit. Per class (`per_class=True`): the predicted class is the
    highest score (`threshold` for one unit); the result is `{"precision/0": ...,
    "precision/1": ..., "precision_macro": ...}`, a class never predicted scoring 0,
    and a real step with NaN scores predicts no class (see `ConfusionMatrix`).

    Which, when `per_class` is None: per class with `num_classes`, Keras's with any of
    `thresholds`, `top_k`, `class_id`; else the first update decides: per class for
    class ids against several output units (which Keras's metric does not take), Keras's
    for one output unit (a sigmoid) and for targets shaped like the predictions.

    Example:
        >>> m = Precision()  # one sigmoid unit: Keras's binary precision at 0.5
        >>> probs = torch.tensor([[[0.9], [0.8], [0.2], [0.7]]])
        >>> m.update(torch.tensor([[1.0, 0.0, 1.0, 1.0]]), Masked(probs, lengths_to_mask([3], 4)))
        >>> m.result()  # steps 0 and 1 predicted positive, step 0 right; step 3 is padding
        0.5
        >>> m = Precision()  # class ids against two scores: per class
        >>> scores = torch.tensor([[[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]]])
        >>> m.update(torch.tensor([[0, 1, 0, -100]]), Masked(scores, lengths_to_mask([3], 4)))
        >>> m.result()  # class 1 is predicted twice, right once; step 3 is padding
        {'precision/0': 1.0, 'precision/1': 0.5, 'precision_macro': 0.75}

    Args:
        thresholds: Keras's: a float or a list of floats in [0, 1] (one result each).
        top_k: Keras's: only the k highest units of a step can be positive.
        class_id: Keras's: score this output unit (class) only.
        name: the metric's name.
        dtype: see `Metric`.
        per_class: True: per class; False: Keras's; None: as above.
        num_classes: per class: the number of classes (checked against the model's).
        threshold: per class: the decision threshold of a single output unit.
    """

    default_name = "precision"

    def score(self, matrix):
        return _precision(matrix)

    def binary_score(self, tp, fp, fn):
        return _ratio(tp, tp + fp)


class Recall(_Thresholded):
    """Recall (true positives / actual positives) over real steps: Keras's
    `keras.metrics.Recall`, or per class.

    Arguments, and which of the two, as `Precision`. Per class, the result is
    `{"recall/0": ..., "recall_macro": ...}`, a class never present scoring 0; a real
    step with NaN scores is a miss of its true class (see `ConfusionMatrix`), as a NaN
    prediction is below every threshold in Keras's.

    Example:
        >>> m = Recall()  # one sigmoid unit: Keras's binary recall at 0.5
        >>> probs = torch.tensor([[[0.9], [0.8], [0.2], [0.7]]])
        >>> m.update(torch.tensor([[1.0, 0.0, 1.0, 1.0]]), Masked(probs, lengths_to_mask([3], 4)))
        >>> m.result()  # positives at steps 0 and 2, found at step 0; step 3 is padding
        0.5
        >>> m = Recall(per_class=True)
        >>> m.update(torch.tensor([[1.0, 0.0, 1.0, 1.0]]), Masked(probs, lengths_to_mask([3], 4)))
        >>> m.result()  # class 0 at step 1, predicted 1; class 1 at steps 0 and 2
        {'recall/0': 0.0, 'recall/1': 0.5, 'recall_macro': 0.25}
    """

    default_name = "recall"

    def score(self, matrix):
        return _recall(matrix)

    def binary_score(self, tp, fp, fn):
        return _ratio(tp, tp + fn)


AVERAGES = (None, "micro", "macro", "weighted")
"""Keras's `FBetaScore(average=)` values."""


class FBetaScore(_PerClass):
    """F-beta score over real steps (`(1 + b^2) p r / (b^2 p + r)`, precision p and
    recall r): Keras's `keras.metrics.FBetaScore`, or per class.

    Keras's metric (as Keras's, over the real steps): every output unit is a binary
    prediction against targets shaped like the predictions (one-hot or multi-label rows,
    0/1 or soft labels; class ids are one-hot encoded): positive above `threshold`, or,
    with `threshold=None`, where it is the step's highest score (each step predicts its
    top class). `result()` is a list, one score per unit, with `average=None`; a float
    with `"micro"` (from the counts of every unit), `"macro"` (the mean over units) or
    `"weighted"` (weighted by each unit's true weight). Keras's `threshold=None` on one
    output unit makes every step a positive (the score of a model that says "yes" to
    all); maskwise refuses it (a `ConfigError` naming `threshold=0.5`).

    Per class (`per_class=True`): the dict of `Precision`'s per-class metric, `{"<name>/0":
    ..., "<name>_macro": ...}`, from the confusion matrix (the highest score, or
    `threshold`, 0.5 by default, for one unit; a real step with NaN scores a miss).

    Which, when `per_class` is None: per class with `num_classes`; Keras's with
    `average` or `threshold`; else the first update decides: per class for class ids
    against several output units (which Keras's metric does not take), Keras's for
    targets shaped like the predictions.

    Example:
        >>> m = FBetaScore(beta=2.0, threshold=0.5)  # Keras's, multi-label: 2 units
        >>> probs = torch.tensor([[[0.9, 0.6], [0.2, 0.7], [0.8, 0.1]]])
        >>> tags = torch.tensor([[[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]])
        >>> m.update(tags, Masked(probs, lengths_to_mask([2], 3)))
        >>> m.result()  # unit 0: p 1, r 1/2; unit 1: p 1/2, r 1; step 2 is padding
        [0.555..., 0.833...]
        >>> m = FBetaScore()  # class ids against two scores: per class
        >>> scores = torch.tensor([[[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]]])
        >>> m.update(torch.tensor([[0, 1, 0, -100]]), Masked(scores, lengths_to_mask([3], 4)))
        >>> m.result()  # class 0: p 1, r 1/2; class 1: p 1/2, r 1
        {'fbeta_score/0': 0.666..., 'fbeta_score/1': 0.666..., 'fbeta_score_macro': 0.666...}

    Args:
        average: Keras's: None, `"micro"`, `"macro"` or `"weighted"`.
        beta: the weight of recall (> 0; 1 is F1).
        threshold: Keras's: a float in (0, 1], or None (each step's highest score);
            per class: the decision threshold of one output unit (0.5 when None).
        name: the metric's name.
        dtype: see `Metric`.
        per_class: True: per class; False: Keras's; None: as above.
        num_classes: per class: the number of classes (checked against the model's).
    """

    default_name = "fbeta_score"

    def __init__(
        self,
        average: str | None = None,
        beta: float = 1.0,
        threshold: float | None = None,
        name: str | None = None,
        dtype: Any = None,
        *,
        per_class: bool | None = None,
        num_classes: int | None = None,
    ) -> None:
        kind = type(self).__name__
        if average not in AVERAGES:
            fix = "e.g. average='macro' for the mean over classes."
            if isinstance(average, int) and not isinstance(average, bool):
                fix = (
                    f"the first argument is Keras's `average`; for the number of classes "
                    f"of the per-class metric pass `{kind}(num_classes={average})`."
                )
            raise ConfigError(
                format_error(
                    f"{kind}: unsupported average.",
                    expected="one of " + ", ".join(repr(a) for a in AVERAGES),
                    received=repr(average),
                    fix=fix,
                )
            )
        if isinstance(beta, bool) or not isinstance(beta, int | float) or not beta > 0:
            raise ConfigError(
                format_error(f"{kind}: beta must be a number > 0.", received=repr(beta))
            )
        if threshold is not None and (
            isinstance(threshold, bool)
            or not isinstance(threshold, int | float)
            or not 0 < threshold <= 1
        ):
            raise ConfigError(
                format_error(
                    f"{kind}: threshold must be a number in (0, 1], or None.",
                    received=repr(threshold),
                )
            )
        if per_class and average is not None:
            raise ConfigError(
                format_error(
                    f"{kind}: average is an argument of Keras's metric; the per-class "
                    "result holds every class and their macro average.",
                    received=f"average={average!r}, per_class=True",
                    fix=f"drop average, or drop per_class for Keras's `{kind}`.",
                )
            )
        if per_class is False and num_classes is not None:
            raise ConfigError(
                format_error(
                    f"{kind}: num_classes is an argument of the per-class metric.",
                    received=f"per_class=False, num_classes={num_classes}",
                    fix="drop num_classes (Keras's metric counts every output unit).",
                )
            )
        self.average, self.beta = average, float(beta)
        if per_class is None and num_classes is not None:
            per_class = True
        elif per_class is None and (average is not None or threshold is not None):
            per_class = False
        self.per_class = per_class
        super().__init__(num_classes, threshold, name, dtype)  # type: ignore[arg-type]

    def reset(self) -> None:
        super().reset()
        # Keras's metric: per unit, the weights of the true and false positives, the
        # false negatives and the true targets (the rows of `(4, units)`).
        self.counts: torch.Tensor | None = None

    def unit_threshold(self) -> float:
        return 0.5 if self.threshold is None else self.threshold

    def score(self, matrix):
        return self.f_beta(_precision(matrix), _recall(matrix))

    def f_beta(self, precision: torch.Tensor, recall: torch.Tensor) -> torch.Tensor:
        b2 = self.beta**2
        return _ratio((1 + b2) * precision * recall, b2 * precision + recall)

    def accumulate(self, values, y_true, mask, sample_weight):
        if self.per_class is None:  # fixed by the first update, as Accuracy's choice
            self.per_class = _ids_for_units(values, y_true, mask)
        if self.per_class:
            super().accumulate(values, y_true, mask, sample_weight)
            return
        preds, targets, real = _unit_steps(values, y_true, mask, self.name)
        if self.threshold is None and preds.shape[-1] == 1:
            raise ConfigError(
                format_error(
                    f"{self.name}: threshold=None takes each step's highest output unit "
                    "as its prediction, and with one unit every step is a positive "
                    "(Keras's value is that of a model that says yes to all).",
                    received=f"predictions of shape {tuple(values.shape)}",
                    fix=f"`{type(self).__name__}(threshold=0.5)` for a sigmoid, or "
                    f"`{type(self).__name__}(per_class=True)` for classes 0 and 1.",
                )
            )
        if self.threshold is None:  # Keras's: the highest score, if not 0 (NaN: none)
            top = preds.max(-1, keepdim=True).values
            positive = (preds >= top) & (preds.abs() > 1e-9)
        else:
            positive = preds > self.threshold
        weight = _step_weights(real, sample_weight).unsqueeze(-1)
        predicted = positive.to(torch.float64) * weight
        truth = targets.to(torch.float64)
        cells = [predicted * truth, predicted * (1 - truth), (weight - predicted) * truth]
        cells.append(weight * truth)
        counts = torch.stack([c.reshape(-1, preds.shape[-1]).sum(0) for c in cells])
        self.counts = counts if self.counts is None else self.counts + counts

    def result(self) -> Any:
        """Keras's metric: a list (one score per unit; `[]` before any update) with
        `average=None`, else a float (0.0 before any update). Per class: as
        `Precision`'s."""
        if self.per_class is not False:
            return super().result()
        if self.counts is None:
            return [] if self.average is None else 0.0
        tp, fp, fn, support = self.counts
        if self.average == "micro":
            tp, fp, fn = tp.sum(), fp.sum(), fn.sum()
        scores = self.f_beta(_ratio(tp, tp + fp), _ratio(tp, tp + fn))
        if self.average is None:
            return scores.tolist()
        if self.average == "weighted":
            return float((scores * _ratio(support, support.sum())).sum())
        return float(scores.mean())


class F1Score(FBetaScore):
    """F1 score over real steps: Keras's `keras.metrics.F1Score` (`FBetaScore` with
    `beta=1`), or per class; arguments, and which of the two, as `FBetaScore`.

    Example:
        >>> m = F1Score()  # class ids against two scores: per class
        >>> scores = torch.tensor([[[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]]])
        >>> m.update(torch.tensor([[0, 1, 0, -100]]), Masked(scores, lengths_to_mask([3], 4)))
        >>> m.result()  # class 0: precision 1, recall 1/2; class 1: 1/2 and 1; 2pr/(p+r)
        {'f1_score/0': 0.666..., 'f1_score/1': 0.666..., 'f1_score_macro': 0.666...}
        >>> m = F1Score(average="macro")  # Keras's, class ids one-hot encoded
        >>> m.update(torch.tensor([[0, 1, 0, -100]]), Masked(scores, lengths_to_mask([3], 4)))
        >>> m.result()
        0.666...
    """

    default_name = "f1_score"

    def __init__(
        self,
        average: str | None = None,
        threshold: float | None = None,
        name: str | None = None,
        dtype: Any = None,
        *,
        per_class: bool | None = None,
        num_classes: int | None = None,
    ) -> None:
        super().__init__(
            average, 1.0, threshold, name, dtype, per_class=per_class, num_classes=num_classes
        )


class AUC(Metric):
    """Area under the ROC or precision-recall curve over real steps, Keras's
    approximation (`keras.metrics.AUC`): the predictions (probabilities, or logits
    with `from_logits`), clipped to [0, 1], are counted against `num_thresholds`
    evenly spaced thresholds (from just below 0 to just above 1; a prediction above a
    threshold is a positive there), with each step's weight (0 at padding, else its
    `sample_weight`), and the curve through those points is integrated.

    Every output unit counts as one more binary prediction (Keras's
    `multi_label=False`); targets are 0/1 like the predictions (any nonzero is 1).
    With no positive or no negative weight the result is 0.0, as Keras's.

    Example:
        >>> m = AUC()
        >>> m.update(torch.tensor([[0.0, 1.0, 1.0]]),
        ...          Masked(torch.tensor([[0.1, 0.9, 0.2]]), lengths_to_mask([2], 3)))
        >>> m.result()  # the 3rd step is padding
        1.0

    Args:
        num_thresholds: how many thresholds (> 1): more gives a finer curve.
        curve: `"ROC"` (true against false positive rate) or `"PR"` (precision against
            recall, with Keras's interpolation between thresholds).
        summation_method: `"interpolation"` (trapezoids), `"minoring"` or `"majoring"`
            (the lower or upper rectangles).
        name: the metric's name.
        dtype: see `Metric`.
        from_logits: the predictions are logits (a sigmoid is applied first); a
            keyword, as Keras's arguments before it (`thresholds`, `multi_label`, ...)
            are not maskwise's.
    """

    default_name = "auc"
    CURVES = ("ROC", "PR")
    SUMMATIONS = ("interpolation", "minoring", "majoring")

    def __init__(
        self,
        num_thresholds: int = 200,
        curve: str = "ROC",
        summation_method: str = "interpolation",
        name: str | None = None,
        dtype: Any = None,
        *,
        from_logits: bool = False,
    ) -> None:
        if (
            isinstance(num_thresholds, bool)
            or not isinstance(num_thresholds, int)
            or (num_thresholds <= 1)
        ):
            raise ConfigError(
                format_error(
                    "AUC num_thresholds must be an integer > 1.", received=repr(num_thresholds)
                )
            )
        for what, value, allowed in (
            ("curve", curve, self.CURVES),
            ("summation_method", summation_method, self.SUMMATIONS),
        ):
            if not isinstance(value, str) or value.upper() not in [a.upper() for a in allowed]:
                raise ConfigError(
                    format_error(
                        f"Unsupported AUC {what}.",
                        expected="one of " + ", ".join(repr(a) for a in allowed),
                        received=repr(value),
                    )
                )
        self.num_thresholds = num_thresholds
        self.curve = curve.upper()
        self.summation_method = summation_method.lower()
        self.from_logits = from_logits
        super().__init__(dtype=dtype, name=name)

    def reset(self) -> None:
        # Weights of positive and negative targets per bucket: bucket i holds the
        # predictions above threshold i but not above threshold i + 1.
        self.positives = torch.zeros(self.num_thresholds, dtype=torch.float64)
        self.negatives = torch.zeros(self.num_thresholds, dtype=torch.float64)

    def accumulate(self, values, y_true, mask, sample_weight):
        preds, targets, real = dense_targets(values, y_true, mask, self.name)
        if self.from_logits:
            preds = torch.sigmoid(preds)
        weight = _step_weights(real, sample_weight).unsqueeze(-1).expand(preds.shape)
        # Keras's bucketing, in the predictions' precision: ceil(p * (n - 1)) - 1.
        scaled = preds.clamp(0.0, 1.0) * (self.num_thresholds - 1)
        bucket = (torch.ceil(scaled) - 1).clamp(min=0).long().reshape(-1)
        truth = (targets != 0).to(torch.float64).reshape(-1)
        weight = weight.reshape(-1)
        self.positives = (
            self.positives
            + torch.bincount(bucket, weights=truth * weight, minlength=self.num_thresholds).cpu()
        )
        self.negatives = (
            self.negatives
            + torch.bincount(
                bucket, weights=(1.0 - truth) * weight, minlength=self.num_thresholds
            ).cpu()
        )

    def result(self) -> float:
        """The area (0.0 before any update)."""
        tp = self.positives.flip(0).cumsum(0).flip(0)
        fp = self.negatives.flip(0).cumsum(0).flip(0)
        fn, tn = tp[0] - tp, fp[0] - fp
        if self.curve == "PR" and self.summation_method == "interpolation":
            return float(_interpolated_pr_auc(tp, fp, fn))
        recall = _ratio(tp, tp + fn)
        if self.curve == "ROC":
            x, y = _ratio(fp, fp + tn), recall
        else:
            x, y = recall, _ratio(tp, tp + fp)
        if self.summation_method == "interpolation":
            heights = (y[:-1] + y[1:]) / 2
        elif self.summation_method == "minoring":
            heights = torch.minimum(y[:-1], y[1:])
        else:
            heights = torch.maximum(y[:-1], y[1:])
        return float(((x[:-1] - x[1:]) * heights).sum())


def _interpolated_pr_auc(tp: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor) -> torch.Tensor:
    """Keras's precision-recall area, precision interpolated between thresholds as
    Davis & Goadrich (2006) do (`keras.metrics.AUC.interpolate_pr_auc`)."""
    dtp = tp[:-1] - tp[1:]
    p = tp + fp
    dp = p[:-1] - p[1:]
    slope = _ratio(dtp, dp.clamp(min=0))
    intercept = tp[1:] - slope * p[1:]
    both = (p[:-1] > 0) & (p[1:] > 0)
    ratio = torch.where(both, _ratio(p[:-1], p[1:].clamp(min=0)), torch.ones_like(p[1:]))
    return _ratio(slope * (dtp + intercept * ratio.log()), (tp[1:] + fn[1:]).clamp(min=0)).sum()


METRICS: dict[str, type[Metric]] = {
    "accuracy": Accuracy,
    "acc": Accuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "categorical_accuracy": CategoricalAccuracy,
    "binary_accuracy": BinaryAccuracy,
    "top_k_accuracy": TopKAccuracy,
    "sparse_top_k_categorical_accuracy": TopKAccuracy,
    "top_k_categorical_accuracy": TopKAccuracy,
    "SparseTopKCategoricalAccuracy": TopKAccuracy,
    "TopKCategoricalAccuracy": TopKAccuracy,
    "mae": MeanAbsoluteError,
    "MAE": MeanAbsoluteError,
    "mean_absolute_error": MeanAbsoluteError,
    "mse": MeanSquaredError,
    "MSE": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
    "mape": MeanAbsolutePercentageError,
    "MAPE": MeanAbsolutePercentageError,
    "mean_absolute_percentage_error": MeanAbsolutePercentageError,
    "msle": MeanSquaredLogarithmicError,
    "MSLE": MeanSquaredLogarithmicError,
    "mean_squared_logarithmic_error": MeanSquaredLogarithmicError,
    "logcosh": LogCoshError,
    "log_cosh": LogCoshError,
    "root_mean_squared_error": RootMeanSquaredError,
    "precision": Precision,
    "recall": Recall,
    "f1_score": F1Score,
    "fbeta_score": FBetaScore,
    "f_beta_score": FBetaScore,
    "confusion_matrix": ConfusionMatrix,
    "auc": AUC,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "bce": BinaryCrossentropy,
    "BCE": BinaryCrossentropy,
}
METRICS.update(
    {
        cls.__name__: cls
        for cls in (
            AUC,
            Accuracy,
            BinaryAccuracy,
            CategoricalAccuracy,
            SparseCategoricalAccuracy,
            MeanAbsoluteError,
            MeanSquaredError,
            MeanAbsolutePercentageError,
            MeanSquaredLogarithmicError,
            LogCoshError,
            RootMeanSquaredError,
            Precision,
            Recall,
            F1Score,
            FBetaScore,
            SparseCategoricalCrossentropy,
            CategoricalCrossentropy,
            BinaryCrossentropy,
        )
    }
)
"""The names `get_metric` resolves: Keras's metric names (its class names, their
snake-case forms and abbreviations such as `"mae"`, `"MSE"`, `"bce"`) and maskwise's.
`"Accuracy"` and `"acc"` are Keras's `compile` choice by shape (`Accuracy`)."""


def get_metric(identifier: str | Metric) -> Metric:
    """A fresh `Metric` named `identifier` from a Keras name (`"accuracy"`, `"acc"`,
    `"mae"`, `"AUC"`, ...), or a `Metric` object (returned as is). The metric is named
    as given, as Keras's `compile` names it (`metrics=["AUC"]` logs `"AUC"`).

    Example:
        >>> get_metric("acc")  # named as given, the key of its value in the logs
        Accuracy(name='acc')
        >>> get_metric("mae").result()  # fresh: nothing seen yet
        0.0
    """
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str):
        if identifier not in METRICS:
            raise ConfigError(
                format_error(
                    f"Unknown metric {identifier!r}.",
                    expected="one of " + ", ".join(sorted(METRICS)),
                    received=repr(identifier),
                    fix="or pass a maskwise.metrics.Metric object.",
                )
            )
        return METRICS[identifier](name=identifier)
    raise MaskwiseTypeError(
        format_error(
            "A metric must be a name or a maskwise.metrics.Metric.",
            received=type(identifier).__name__,
            fix=losses.keras_object_fix(identifier, "metrics", METRICS)
            or "e.g. `metrics=['accuracy']` or `metrics=[maskwise.metrics.TopKAccuracy(3)]`.",
        )
    )
