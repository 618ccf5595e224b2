"""`_host.exact_checks`: input checks read values inside it on every device, and code
compiled with `torch.compile` follows it without a graph break."""

from __future__ import annotations

import torch
from host_reads import off_the_cpu
from torch._dynamo.utils import counters

from maskwise.layers import _host


def checked(x: torch.Tensor) -> torch.Tensor:
    return x + 1 if _host.checks_read_host(x.device) else x - 1


def test_exact_checks_read_the_host_inside_only_and_nest() -> None:
    cpu = torch.device("cpu")
    assert _host.checks_read_host(cpu)
    with off_the_cpu():
        assert not _host.checks_read_host(cpu)
        with _host.exact_checks():
            assert _host.checks_read_host(cpu)
            with _host.exact_checks(False):  # an inner context does not switch it off
                assert _host.checks_read_host(cpu)
        assert not _host.checks_read_host(cpu)
        with _host.exact_checks(False):
            assert not _host.checks_read_host(cpu)


def test_compiled_code_follows_exact_checks_without_a_graph_break() -> None:
    compiled = torch.compile(checked, backend="eager")
    x = torch.zeros(2)
    counters.clear()
    with off_the_cpu():
        assert compiled(x).tolist() == [-1.0, -1.0]
        with _host.exact_checks():
            assert compiled(x).tolist() == [1.0, 1.0]
        assert compiled(x).tolist() == [-1.0, -1.0]
    assert dict(counters["graph_break"]) == {}
