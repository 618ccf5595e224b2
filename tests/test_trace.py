"""`trace`: one row per layer call with shapes and mask coverage in and out (seed 000's
"print every layer's input and output mask"), a printed table, and a mask plot."""

import matplotlib.pyplot
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from maskwise import Graph, Masked, Module, Sequential, Trace, layers, trace

LENGTHS = (5, 2, 3)  # 10 real steps of 3 x 5
REAL = 10 / 15


def padded_values() -> torch.Tensor:
    """(3, 5, 4) features, post-padded with zeros to the lengths above."""
    generator = torch.Generator().manual_seed(0)
    return Masked.pad([torch.rand(n, 4, generator=generator) + 1.0 for n in LENGTHS]).values


def pooled_model() -> Sequential:
    return Sequential(
        [
            layers.Masking(0.0, name="masking"),
            layers.TimeDistributed(layers.Dense(3), name="per_step"),
            layers.Dropout(0.5, name="dropout"),
            layers.GlobalAveragePooling1D(name="pool"),
            layers.Dense(2, name="head"),
        ]
    )


def test_rows_name_each_layer_with_shapes_and_coverage():
    result = trace(pooled_model(), padded_values())
    rows = {r.name: r for r in result.rows}
    # The Dense inside TimeDistributed is part of its wrapper's row.
    assert [r.name for r in result.rows] == ["masking", "per_step", "dropout", "pool", "head"]
    assert [r.type for r in result.rows][:2] == ["Masking", "TimeDistributed"]
    assert rows["masking"].input_coverage == (None,)  # a plain tensor has no mask
    for name in ("masking", "per_step", "dropout"):
        assert rows[name].output_coverage == pytest.approx(REAL)
    assert rows["per_step"].input_shapes == ((3, 5, 4),)
    assert rows["per_step"].output_shape == (3, 5, 3)
    assert rows["pool"].input_coverage == (pytest.approx(REAL),)
    assert rows["pool"].output_shape == (3, 3) and rows["pool"].output_coverage is None
    assert [r.dropped for r in result.rows] == [False] * 5
    assert [r.consumed for r in result.rows] == [False, False, False, True, False]
    expected_mask = torch.arange(5) < torch.tensor(LENGTHS).unsqueeze(1)
    assert torch.equal(rows["dropout"].output_mask, expected_mask)
    assert torch.equal(rows["per_step"].input_masks[0], expected_mask)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 7), min_size=1, max_size=5), st.sampled_from(["post", "pre"]))
def test_coverage_is_the_fraction_of_real_steps(lengths, padding):
    time = 7
    x = Masked.from_lengths(torch.ones(len(lengths), time, 2), lengths, padding=padding)
    rows = trace(Sequential([layers.Dense(3), layers.Activation("relu")]), x).rows
    real = sum(lengths) / (len(lengths) * time)
    for row in rows:
        assert row.input_coverage == (pytest.approx(real),)
        assert row.output_coverage == pytest.approx(real)
        assert torch.equal(row.output_mask, x.mask)


def test_printed_table_is_aligned_and_names_every_layer():
    text = str(trace(pooled_model(), padded_values()))
    lines = text.splitlines()
    assert lines[0].split() == [
        "layer", "type", "input", "shape", "input", "mask", "output", "shape", "output",
        "mask", "note",
    ]  # fmt: skip
    assert len(lines) == 6
    column = lines[0].index("output mask")
    for line, coverage in zip(lines[1:], ["66.7%", "66.7%", "66.7%", "none", "none"]):
        assert line[column:].startswith(coverage)
    assert lines[4].startswith("pool") and lines[4].endswith("consumed")
    assert lines[1].split()[:4] == ["masking", "Masking", "(3,", "5,"]


def test_trace_runs_in_eval_mode_without_gradients_and_restores_the_mode():
    model = pooled_model().train()
    x = padded_values()
    result = trace(model, x)
    assert model.training and all(m.training for m in model.modules())
    assert not result.output.values.requires_grad
    model.eval()
    torch.testing.assert_close(result.output.values, model(x).values, atol=0.0, rtol=0.0)
    assert all(not layer._forward_hooks for layer in model.modules())


def test_graph_rows_show_each_input_of_a_merge():
    graph = Graph(
        inputs=["features", "tokens"],
        nodes=[
            ("num", layers.Masking(0.0, name="num"), ["features"]),
            ("emb", layers.Embedding(10, 3, mask_zero=True, name="emb"), ["tokens"]),
            ("cat", layers.Concatenate(name="cat"), ["num", "emb"]),
        ],
        outputs="cat",
    )
    tokens = torch.tensor([[1, 2, 3, 4, 5], [1, 1, 1, 1, 0], [1, 1, 0, 0, 0]])  # 4 + 4 + 2
    result = trace(graph, padded_values(), tokens)
    cat = result.rows[-1]
    assert [r.name for r in result.rows] == ["num", "emb", "cat"]
    assert cat.input_shapes == ((3, 5, 4), (3, 5, 3))
    assert cat.input_coverage == (pytest.approx(10 / 15), pytest.approx(11 / 15))
    # real in both: row 0 all 5, row 1 min(2, 4) = 2, row 2 min(3, 2) = 2
    assert cat.output_coverage == pytest.approx(9 / 15)
    assert "66.7%, 73.3%" in str(result)


def test_lambda_that_drops_the_mask_on_purpose_consumes_it_and_module_is_looked_into():
    class Model(Module):
        def __init__(self):
            super().__init__()
            self.mask = layers.Masking(0.0, name="mask")
            self.last = layers.Lambda(lambda x: x[:, -1], mask="drop", name="last")

        def forward(self, x):
            return self.last(self.mask(x))

    result = trace(Model(), padded_values())
    rows = [(r.name, r.consumed, r.dropped) for r in result.rows]
    assert rows == [("mask", False, False), ("last", True, False)]


def test_rows_of_layers_called_with_options_show_their_inputs_and_first_output():
    """Bidirectional with initial and final states, MultiHeadAttention on a context
    given by keyword with its scores: each row shows the inputs as the layer read them
    (query, value, and the value again as the key) and the `Masked` output before the
    extras."""

    class Tagger(Module):
        def __init__(self):
            super().__init__()
            lstm = layers.LSTM(3, return_sequences=True, return_state=True)
            self.bi = layers.Bidirectional(lstm, merge_mode=None, name="bi")
            self.att = layers.MultiHeadAttention(2, 2, name="att")

        def forward(self, x, context):
            states = [torch.zeros(3, 3)] * 4
            ahead, _, *_ = self.bi(x, initial_state=states)
            out, scores = self.att(ahead, value=context, return_attention_scores=True)
            return out.with_values(out.values + scores.sum())

    x = Masked.pad([torch.ones(n, 4) for n in LENGTHS])
    context = Masked.pad([torch.ones(n, 2) for n in (1, 4, 2)])  # 7 of 12 steps real
    result = trace(Tagger(), x, context)
    bi, att = result.rows
    assert (bi.name, bi.input_shapes, bi.output_shape) == ("bi", ((3, 5, 4),), (3, 5, 3))
    assert bi.input_coverage == (pytest.approx(REAL),) and not bi.dropped
    assert bi.output_coverage == pytest.approx(REAL)
    assert att.input_shapes == ((3, 5, 3), (3, 4, 2), (3, 4, 2))
    assert att.input_coverage == (pytest.approx(REAL), pytest.approx(7 / 12), pytest.approx(7 / 12))
    assert torch.equal(att.input_masks[1], context.mask)
    assert torch.equal(att.output_mask, x.mask) and not att.dropped
    assert isinstance(result.output, Masked) and torch.equal(result.output.mask, x.mask)


class LosesTheMask(layers.Layer):
    """A custom layer whose mask rule forgets the mask: an unintended drop."""

    def call(self, values, mask):
        return values

    def compute_mask(self, values, mask):
        return None


def consuming_and_dropping_model() -> Sequential:
    return Sequential(
        [
            layers.Masking(0.0, name="masking"),
            layers.LSTM(3, return_sequences=True, name="tagger"),
            LosesTheMask(name="loses"),
            layers.LSTM(2, name="encoder"),
            layers.Dense(1, name="head"),
        ]
    )


def test_masks_consumed_on_purpose_are_told_from_dropped_ones():
    """An RNN without return_sequences and global pooling use the mask up; a layer
    whose mask rule forgets it drops it. Only the drop is the mistake to show."""
    masked = Masked.pad([torch.ones(4, 2), torch.ones(2, 2)])
    model = Sequential(
        [
            layers.Masking(0.0, name="masking"),
            layers.Bidirectional(layers.GRU(2), name="bi"),
        ]
    )
    assert [(r.consumed, r.dropped) for r in trace(model, masked).rows][-1] == (True, False)
    result = trace(consuming_and_dropping_model(), masked.values)
    states = {r.name: (r.consumed, r.dropped) for r in result.rows}
    assert states == {
        "masking": (False, False),
        "tagger": (False, False),
        "loses": (False, True),
        "encoder": (False, False),  # no mask came in: nothing to consume
        "head": (False, False),
    }
    notes = {line.split()[0]: line.split()[-1] for line in str(result).splitlines()[1:]}
    assert notes["loses"] == "dropped" and notes["tagger"] == "75.0%"
    pooled = trace(pooled_model(), padded_values())
    assert "dropped" not in str(pooled) and str(pooled).splitlines()[4].endswith("consumed")


def test_plot_shows_consumed_in_blue_dropped_in_red_and_a_legend():
    masked = Masked.pad([torch.ones(4, 2), torch.ones(2, 2)]).values
    rows = trace(consuming_and_dropping_model(), masked).rows
    rows += trace(pooled_model(), padded_values()).rows
    figure = Trace(rows, output=None).figure()
    panels = {
        ax.get_title(loc="left").split(" ")[0]: [(t.get_text(), t.get_color()) for t in ax.texts]
        for ax in figure.axes
    }
    assert panels["loses"] == [("mask DROPPED", "red")]
    assert panels["pool"] == [("mask consumed", "#1f5fa8")]
    assert panels["encoder"] == [("no mask", "gray")]
    assert panels["tagger"] == []  # a heat map of the mask
    legend = [t.get_text() for t in figure.legends[0].get_texts()]
    assert legend == ["real step", "padded step", "mask consumed on purpose", "mask DROPPED (lost)"]
    matplotlib.pyplot.close(figure)


def test_plot_writes_a_png_with_one_panel_per_layer(tmp_path):
    path = trace(pooled_model(), padded_values()).plot(tmp_path / "plots" / "trace.png")
    assert path == tmp_path / "plots" / "trace.png"
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 10_000
