"""Conv1D, DepthwiseConv1D, SeparableConv1D, Conv1DTranspose, MaxPooling1D and
AveragePooling1D: the contract, the mask rule against a step-by-step statement of it,
each row of a padded batch against its unpadded run (maskwise and Keras), Keras parity
without a mask and where Keras's windows do not touch the padding, errors."""

import itertools
import math

import keras
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from keras_oracle import assert_parity, build_keras, convert_layer, keras_call

import maskwise.convert.convolutional  # noqa: F401  (registers the converters)
from maskwise import ConfigError, Masked, MaskwiseTypeError, Sequential, ShapeError
from maskwise.convert.keras_model import from_keras
from maskwise.layers import (
    AveragePooling1D,
    Conv1D,
    Conv1DTranspose,
    DepthwiseConv1D,
    Embedding,
    MaxPooling1D,
    SeparableConv1D,
    convolutional,
    pooling,
)
from maskwise.layers._windows import Window

from .contract import MASK_KINDS, check_layer_contract, example_input, example_mask

CONVS = ("Conv1D", "DepthwiseConv1D", "SeparableConv1D")
POOLS = ("MaxPooling1D", "AveragePooling1D")
NAMES = (*CONVS, "Conv1DTranspose", *POOLS)
MODES = {
    "Conv1D": ("valid", "same", "causal"),
    "DepthwiseConv1D": ("valid", "same"),
    "SeparableConv1D": ("valid", "same"),
    "Conv1DTranspose": ("valid", "same"),
    "MaxPooling1D": ("valid", "same"),
    "AveragePooling1D": ("valid", "same"),
}
CHANNELS = 4
OUT_CHANNELS = {
    "Conv1D": 3,
    "DepthwiseConv1D": 2 * CHANNELS,
    "SeparableConv1D": 3,
    "Conv1DTranspose": 3,
    "MaxPooling1D": CHANNELS,
    "AveragePooling1D": CHANNELS,
}
# (kernel or pool size, strides, dilation): plain, strided with a `same` left pad that
# depends on the row's length (3 taps, stride 2), dilated.
CONFIGS = ((2, 1, 1), (3, 2, 1), (2, 1, 2))


def arguments(name, padding, size, stride, dilation):
    """Keyword arguments shared by the maskwise and the Keras constructors."""
    if name in POOLS:
        return {"pool_size": size, "strides": stride, "padding": padding}
    extra = {
        "Conv1D": {"filters": 3},
        "DepthwiseConv1D": {"depth_multiplier": 2},
        "SeparableConv1D": {"filters": 3, "depth_multiplier": 2},
        "Conv1DTranspose": {"filters": 3},
    }[name]
    return {
        "kernel_size": size,
        "strides": stride,
        "padding": padding,
        "dilation_rate": dilation,
        **extra,
    }


def layer_class(name):
    return getattr(pooling if name in POOLS else convolutional, name)


def make(name, padding, size, stride, dilation):
    return layer_class(name)(**arguments(name, padding, size, stride, dilation))


def make_keras(name, padding, size, stride, dilation):
    return getattr(keras.layers, name)(**arguments(name, padding, size, stride, dilation))


def keras_length(name, padding, size, stride, dilation, n):
    """Keras's output length for `n` steps (its own shape arithmetic); 0 where Keras
    finds no output step."""
    layer = make_keras(name, padding, size, stride, 1 if name in POOLS else dilation)
    try:
        length = layer.compute_output_shape((1, n, CHANNELS))[1]
    except ValueError:
        return 0
    return max(int(length), 0)


def stated_mask(name, mask, padding, size, stride, dilation):
    """The mask rule of the docstrings, written out step by step."""
    batch, time = mask.shape
    rows = []
    if name == "Conv1DTranspose":
        total = keras_length(name, padding, size, stride, dilation, time)
        for row in mask.tolist():
            real = [t for t, keep in enumerate(row) if keep]
            if not real:
                rows.append([False] * total)
                continue
            first = real[0] * stride
            count = keras_length(name, padding, size, stride, dilation, real[-1] - real[0] + 1)
            rows.append([first <= u < first + count for u in range(total)])
        return torch.tensor(rows, dtype=torch.bool).reshape(batch, total)
    if name in POOLS:
        dilation = 1
    span = (size - 1) * dilation + 1
    for row in mask.tolist():
        if padding == "valid":
            outputs = (time - span) // stride + 1
            rows.append(
                [all(row[j * stride + t * dilation] for t in range(size)) for j in range(outputs)]
            )
        else:
            outputs = math.ceil(time / stride)
            rows.append([row[j * stride] for j in range(outputs)])
    return torch.tensor(rows, dtype=torch.bool).reshape(batch, -1)


def contract_cases():
    for name in NAMES:
        for padding, config, kind in itertools.product(MODES[name], CONFIGS, MASK_KINDS):
            if name in POOLS and config[2] > 1:
                continue  # pooling has no dilation
            if (padding, config, kind) == ("valid", (3, 2, 1), "noncontiguous"):
                continue  # every window holds a hole: no real output to check
            yield name, padding, config, kind


# ---------------------------------------------------------------------- contract
@pytest.mark.parametrize(("name", "padding", "config", "kind"), list(contract_cases()))
def test_layers_keep_the_contract(name, padding, config, kind):
    mask = stated_mask(name, example_mask(kind), padding, *config)
    check_layer_contract(
        lambda: make(name, padding, *config),
        example_input(kind, features=CHANNELS),
        expected_shape=(3, mask.shape[1], OUT_CHANNELS[name]),
        expected_mask=mask,
    )


@pytest.mark.parametrize("name", NAMES)
def test_padded_output_steps_hold_zeros_and_an_empty_row_gives_none(name):
    x = Masked(torch.randn(2, 6, CHANNELS), torch.tensor([[1] * 4 + [0] * 2, [0] * 6]).bool())
    out = make(name, "same", 3, 1, 1)(x)
    assert not out.mask[1].any() and out.mask[0].any()
    assert out.values[~out.mask].eq(0).all()


# ---------------------------------------------------------------------- padding invariance
@settings(max_examples=150, deadline=None)
@given(
    name=st.sampled_from(NAMES),
    padding=st.sampled_from(("valid", "same", "causal")),
    size=st.integers(1, 4),
    stride=st.integers(1, 3),
    dilation=st.integers(1, 2),
    lengths=st.lists(st.integers(1, 9), min_size=1, max_size=4),
    fill=st.sampled_from((float("nan"), 1e6)),
    side=st.sampled_from(("post", "pre")),
)
def test_each_row_equals_its_unpadded_run_whatever_the_padding(
    name, padding, size, stride, dilation, lengths, fill, side
):
    assume(padding in MODES[name] and (name in POOLS or stride == 1 or dilation == 1))
    # leading padding gives the unpadded run with strides 1 (the transpose: always)
    assume(side == "post" or stride == 1 or name == "Conv1DTranspose")
    layer = make(name, padding, size, stride, dilation)
    span = (size - 1) * (1 if name in POOLS else dilation) + 1
    assume(padding != "valid" or name == "Conv1DTranspose" or max(lengths) >= span)
    generator = torch.Generator().manual_seed(len(lengths))
    rows = [torch.randn(n, CHANNELS, generator=generator) for n in lengths]
    out = layer(Masked.pad(rows, value=fill, padding=side))
    assert torch.isfinite(out.values).all() and out.values[~out.mask].eq(0).all()
    for i, row in enumerate(rows):
        real = out.values[i][out.mask[i]]
        expected = keras_length(name, padding, size, stride, dilation, len(row))
        assert len(real) == expected
        if expected == 0:
            continue
        alone = layer(row[None]).values[0]
        torch.testing.assert_close(real, alone, atol=1e-5, rtol=1e-5)
        # real outputs are contiguous: first for trailing padding, last for leading
        where = out.mask[i] if side == "post" else out.mask[i].flip(0)
        assert where[:expected].all() and not where[expected:].any()


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(CONVS),
    padding=st.sampled_from(("valid", "same", "causal")),
    size=st.integers(1, 4),
    stride=st.integers(1, 3),
    dilation=st.integers(1, 2),
    row=st.lists(st.booleans(), min_size=1, max_size=9).filter(any),
)
def test_holes_are_read_as_zeros_between_real_steps(name, padding, size, stride, dilation, row):
    """A row with holes: its real outputs are Keras's on the row up to its last real
    step, unmasked, with the holes holding zeros."""
    assume(padding in MODES[name] and not (stride > 1 and dilation > 1))
    extent = max(t for t, keep in enumerate(row) if keep) + 1
    assume(padding != "valid" or extent >= (size - 1) * dilation + 1)
    mask = torch.tensor([row + [False] * 2])
    values = torch.randn(1, len(row) + 2, CHANNELS)
    x = Masked(torch.where(mask[..., None], values, float("nan")), mask)
    keras_layer = build_keras(make_keras(name, padding, size, stride, dilation), x)
    ours = convert_layer(keras_layer)(x)
    zeroed = torch.where(mask[..., None], values, 0.0)[:, :extent]
    theirs = keras_call(keras_layer, Masked(zeroed))
    assert torch.equal(ours.mask, stated_mask(name, mask, padding, size, stride, dilation))
    real = ours.mask[0, : theirs.values.shape[1]]
    torch.testing.assert_close(
        ours.values[0][ours.mask[0]], theirs.values[0][real], atol=1e-5, rtol=1e-5
    )
    assert not ours.mask[0, theirs.values.shape[1] :].any()


def _pool_reference(values, mask, size, stride, padding, reduce):
    """The pooling rule step by step: each row padded alone as TensorFlow pads it (its
    extent = its last real step + 1), then the max or mean of the real steps of each
    window."""
    time = values.shape[1]
    outputs = (time - size) // stride + 1 if padding == "valid" else math.ceil(time / stride)
    out = torch.zeros(values.shape[0], outputs, values.shape[2])
    for i, row in enumerate(mask.tolist()):
        extent = max((t + 1 for t, keep in enumerate(row) if keep), default=0)
        left = 0
        if padding == "same":
            total = max((math.ceil(extent / stride) - 1) * stride + size - extent, 0)
            left = total // 2
        for j in range(outputs):
            steps = [j * stride - left + t for t in range(size)]
            real = [values[i, s] for s in steps if 0 <= s < time and row[s]]
            if real:
                out[i, j] = reduce(torch.stack(real))
    return out


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(POOLS),
    padding=st.sampled_from(("valid", "same")),
    size=st.integers(1, 4),
    stride=st.integers(1, 3),
    rows=st.lists(st.lists(st.booleans(), min_size=6, max_size=6), min_size=1, max_size=3),
)
def test_pooling_uses_the_real_steps_of_each_window_only(name, padding, size, stride, rows):
    mask = torch.tensor(rows)
    values = torch.randn(*mask.shape, CHANNELS) - 5  # below the zeros padding could offer
    x = Masked(torch.where(mask[..., None], values, float("nan")), mask)
    out = make(name, padding, size, stride, 1)(x)
    reduce = (lambda v: v.amax(0)) if name == "MaxPooling1D" else (lambda v: v.mean(0))
    expected = _pool_reference(values, mask, size, stride, padding, reduce)
    assert torch.equal(out.mask, stated_mask(name, mask, padding, size, stride, 1))
    torch.testing.assert_close(out.values[out.mask], expected[out.mask])


def test_max_pooling_of_integers_stays_integer_and_padding_never_wins():
    x = Masked.pad([torch.tensor([[-3], [-5], [-1]]), torch.tensor([[-7]])])
    out = MaxPooling1D(2, padding="same")(x)
    assert out.values.dtype == torch.int64
    assert out.values[..., 0].tolist() == [[-3, -1], [-7, 0]]
    assert out.mask.tolist() == [[True, True], [True, False]]


def test_average_pooling_leaves_uneven_same_padding_out_of_the_count():
    # pool 4, strides 1, `same` on 5 steps pads 1 step left and 2 right (TensorFlow).
    x = Masked(torch.tensor([[[1.0], [2.0], [3.0], [4.0], [5.0]]]))
    ours = AveragePooling1D(4, 1, "same")(x)
    assert ours.values[0, :, 0].tolist() == [2.0, 2.5, 3.5, 4.0, 4.5]
    # Keras 3 on torch counts copies of the edge step there: (4 + 5 + 5 + 5) / 4.
    theirs = keras_call(keras.layers.AveragePooling1D(4, 1, "same"), x)
    assert theirs.values[0, -1, 0].item() == pytest.approx(4.75)


def test_same_left_pads_stay_in_the_range_the_layers_loop_over():
    for size, stride, dilation in itertools.product(range(1, 6), range(1, 5), range(1, 3)):
        window = Window(size, stride, dilation, "same")
        pads = window.same_left_pads(torch.arange(30)).tolist()
        assert set(pads) <= set(window.left_pad_range()), (size, stride, dilation)


# ---------------------------------------------------------------------- lengths
@settings(max_examples=80, deadline=None)
@given(
    name=st.sampled_from(NAMES),
    padding=st.sampled_from(("valid", "same", "causal")),
    size=st.integers(1, 5),
    stride=st.integers(1, 4),
    dilation=st.integers(1, 3),
    lengths=st.lists(st.integers(0, 12), min_size=1, max_size=4),
)
def test_output_mask_lengths_are_keras_output_lengths(
    name, padding, size, stride, dilation, lengths
):
    assume(padding in MODES[name] and (name in POOLS or stride == 1 or dilation == 1))
    layer = make(name, padding, size, stride, dilation)
    time = max(lengths) + (size - 1) * dilation + 1  # every config has an output step
    mask = torch.arange(time) < torch.tensor(lengths)[:, None]
    out = layer(Masked(torch.randn(len(lengths), time, CHANNELS), mask))
    # a row without real steps has no real output (Keras has no such row)
    expected = [keras_length(name, padding, size, stride, dilation, n) if n else 0 for n in lengths]
    assert out.lengths.tolist() == expected
    assert out.values.shape[1] == keras_length(name, padding, size, stride, dilation, time)


TRANSPOSE_CASES = [
    (padding, output_padding, size, stride, dilation)
    for padding in ("valid", "same")
    for output_padding in (None, 0, 1, 2)
    for size, stride, dilation in ((1, 3, 1), (3, 3, 1), (4, 3, 1), (3, 1, 2))
    if output_padding is None or output_padding < stride  # Keras's rule too
]


@pytest.mark.parametrize(
    ("padding", "output_padding", "size", "stride", "dilation"), TRANSPOSE_CASES
)
def test_conv1d_transpose_lengths_and_values_match_keras(
    padding, output_padding, size, stride, dilation
):
    x = Masked.pad([torch.randn(n, CHANNELS) for n in (5, 2, 4)])
    keras_layer = build_keras(
        keras.layers.Conv1DTranspose(
            3, size, stride, padding, output_padding=output_padding, dilation_rate=dilation
        ),
        x.with_mask(None),
    )
    ours = convert_layer(keras_layer)
    assert_parity(keras_layer, ours, x.with_mask(None))
    out = ours(x)
    for i, row in enumerate(x.unpad()):
        theirs = keras_call(keras_layer, Masked(row[None]))
        assert out.lengths[i] == theirs.values.shape[1]
        torch.testing.assert_close(
            out.values[i][out.mask[i]], theirs.values[0], atol=1e-5, rtol=1e-5
        )


# ---------------------------------------------------------------------- Keras parity
def parity_cases():
    for name in NAMES:
        for padding, config in itertools.product(MODES[name], CONFIGS):
            _, stride, dilation = config
            if name in POOLS and dilation > 1:
                continue
            if stride > 1 and dilation > 1:
                continue
            yield name, padding, config


@pytest.mark.parametrize(("name", "padding", "config"), list(parity_cases()))
def test_matches_keras_without_a_mask_and_on_each_unpadded_row(name, padding, config):
    x = Masked.pad([torch.randn(n, CHANNELS) for n in (7, 4, 5)], value=float("nan"))
    keras_layer = build_keras(make_keras(name, padding, *config), x.with_mask(None))
    ours = convert_layer(keras_layer)
    dense = Masked(torch.randn(3, 7, CHANNELS))
    assert_parity(keras_layer, ours, dense)
    out = ours(x)
    for i, row in enumerate(x.unpad()):
        if name == "AveragePooling1D" and padding == "same":
            total = (math.ceil(len(row) / config[1]) - 1) * config[1] + config[0] - len(row)
            if total % 2:
                continue  # Keras on torch counts edge copies there (test above)
        theirs = keras_call(keras_layer, Masked(row[None]))
        assert out.lengths[i] == theirs.values.shape[1]
        torch.testing.assert_close(
            out.values[i][out.mask[i]], theirs.values[0], atol=1e-5, rtol=1e-5
        )


@pytest.mark.parametrize("padding", ["valid", "causal"])
@pytest.mark.parametrize(("size", "stride", "dilation"), [(3, 1, 1), (3, 2, 1), (2, 1, 2)])
def test_keras_agrees_on_padded_batches_where_windows_do_not_touch_the_padding(
    padding, size, stride, dilation
):
    # `valid` and `causal` windows of real outputs read only real steps (and the zeros
    # causal adds in front), so Keras 3, which drops the mask here, agrees at them.
    x = Masked.pad([torch.randn(n, CHANNELS) for n in (7, 4, 5)], value=100.0)
    keras_layer = build_keras(
        keras.layers.Conv1D(3, size, stride, padding, dilation_rate=dilation), x
    )
    theirs = keras_call(keras_layer, x)
    assert theirs.mask is None  # Keras 3 drops the mask at Conv1D
    ours = convert_layer(keras_layer)(x)
    torch.testing.assert_close(
        ours.values[ours.mask], theirs.values[ours.mask], atol=1e-5, rtol=1e-5
    )


def test_a_keras_text_model_with_a_convolution_converts_and_keeps_the_mask():
    tokens = torch.tensor([[3, 5, 2, 7, 0, 0], [4, 1, 0, 0, 0, 0]])
    keras_net = keras.Sequential(
        [
            keras.Input((None,), dtype="int32"),
            keras.layers.Embedding(10, 4, mask_zero=True),
            keras.layers.Conv1D(3, 2, padding="causal"),
            keras.layers.MaxPooling1D(2, padding="same"),
        ]
    )
    model = from_keras(keras_net)
    out = model(tokens)
    assert isinstance(model.layers[0], Embedding)
    assert out.lengths.tolist() == [2, 1]
    for i, length in enumerate((4, 2)):  # Keras on each unpadded row
        theirs = torch.as_tensor(keras_net(tokens[i : i + 1, :length]).detach())
        torch.testing.assert_close(out.values[i][out.mask[i]], theirs[0], atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------- errors
def test_a_kernel_longer_than_the_time_axis_under_valid_is_explained():
    with pytest.raises(
        ShapeError, match=r"no output step.*spans 5 steps.*\n.*at least 5.*\n.*\(2, 4, 4\)"
    ):
        Conv1D(3, 3, dilation_rate=2)(Masked(torch.zeros(2, 4, CHANNELS)))
    with pytest.raises(ShapeError, match="no output step"):
        MaxPooling1D(5)(Masked(torch.zeros(2, 4, CHANNELS)))


def test_groups_must_divide_filters_and_channels():
    with pytest.raises(
        ConfigError, match=r"filters must be divisible by groups.*\n.*filters=3, groups=2"
    ):
        Conv1D(3, 2, groups=2)
    with pytest.raises(ShapeError, match=r"groups=4, which does not divide its 6 input channels"):
        Conv1D(8, 2, groups=4)(torch.zeros(1, 5, 6))


@pytest.mark.parametrize("name", NAMES)
def test_channels_first_is_refused(name):
    kwargs = arguments(name, "valid", 2, 1, 1)
    with pytest.raises(
        ConfigError, match=r"channels_last' only.*\n.*\n.*'channels_first'\n.*transpose"
    ):
        layer_class(name)(**kwargs, data_format="channels_first")


def test_keras_channels_first_is_refused_by_the_converter():
    layer = keras.layers.Conv1D(3, 2, data_format="channels_first")
    layer.build((1, CHANNELS, 6))
    with pytest.raises(ConfigError, match="data_format='channels_first'"):
        convert_layer(layer)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (
            lambda: DepthwiseConv1D(3, padding="causal"),
            r"padding must be one of \['valid', 'same'\]",
        ),
        (lambda: Conv1D(3, 2, padding="full"), r"padding must be one of .*\n.*'full'"),
        (lambda: Conv1D(3, 0), r"kernel_size must be an integer of at least 1.*\n.*\n.*0"),
        (lambda: MaxPooling1D(2, strides=0), r"strides must be an integer of at least 1"),
        (lambda: Conv1D(2.5, 2), r"filters must be an integer"),
        (lambda: Conv1DTranspose(3, 3, strides=2, output_padding=2), "smaller than strides"),
        (lambda: SeparableConv1D(3, 3, strides=2, dilation_rate=2), r"not both.*\n.*strides=2"),
        (
            lambda: Conv1DTranspose(3, 3, output_padding=-1),
            r"output_padding must be an integer of at least 0",
        ),
    ],
)
def test_bad_arguments_are_explained(build, match):
    with pytest.raises(ConfigError, match=match):
        build()


@pytest.mark.parametrize("name", NAMES)
def test_values_must_be_3d_with_the_built_channels(name):
    layer = make(name, "same", 2, 1, 1)
    with pytest.raises(ShapeError, match=r"3-D values.*\n.*\(batch, time, (channels|features)\)"):
        layer(torch.zeros(2, 5, 3, 1))
    if name not in POOLS:
        layer(torch.zeros(2, 5, 3))
        with pytest.raises(ShapeError, match=r"built for 3 input channels.*\n.*\(batch, time, 3\)"):
            layer(torch.zeros(2, 5, 4))


@pytest.mark.parametrize(
    ("module", "twin"),
    [
        (torch.nn.Conv1d(4, 3, 2), "Conv1D"),
        (torch.nn.ConvTranspose1d(4, 3, 2), "Conv1DTranspose"),
        (torch.nn.MaxPool1d(2), "MaxPooling1D"),
        (torch.nn.AvgPool1d(2), "AveragePooling1D"),
    ],
)
def test_a_plain_torch_window_module_points_to_the_masked_layer(module, twin):
    with pytest.raises(MaskwiseTypeError, match=rf"(?s)padded steps would leak.*layers\.{twin} "):
        Sequential([module])
