"""Every public analysis result has a short text repr and an HTML table repr (notebooks)."""

import os

import pytest

import pmviz
import pmviz.analysis as pa

SAMPLES = os.path.join(os.path.dirname(__file__), "..", "sample_data")


@pytest.fixture(scope="module")
def cap():
    path = os.path.join(SAMPLES, "numpy-workload.pmviz")
    if not os.path.isdir(path):
        pytest.skip("sample capture not built")
    return pmviz.open(path)


def _results(cap):
    d = pa.snapshot_diff(cap, 0, -1)
    return {
        "HeatmapGrid": pa.heatmap_grid(cap, "written"),
        "AddressAxis": pa.address_axis(cap),
        "WorkingSet": pa.working_set_size(cap),
        "WssCurve": pa.wss_curve(cap),
        "IdleTime": pa.idle_time(cap),
        "Temperature of resident pages": pa.temperature(cap, window=5),
        "Sparsity": pa.sparsity(cap),
        "SnapshotDiff": d,
        "DiffGrid": pa.diff_grid(d),
        "Pre-copy estimate": pa.precopy_estimate(cap, bandwidth=1.25e9),
        "HilbertMap": pa.hilbert_map(cap, vma="[heap]"),
    }


def test_reprs_are_short_text_and_escaped_html(cap):
    for title, r in _results(cap).items():
        text = repr(r)
        assert text.splitlines()[0] == title, text
        assert 2 <= len(text.splitlines()) <= 16 and "array(" not in text, text
        assert max(len(line) for line in text.splitlines()) < 160, text
        h = r._repr_html_()
        assert h.startswith("<div><b>") and "<table>" in h and "array(" not in h


def test_html_values_are_escaped():
    from pmviz.analysis._html import table

    assert "&lt;script&gt;" in table("t", {"k": "<script>"})
