"""Analysis of captures: pure numpy (no matplotlib), runs anywhere a capture can be opened.

Every function takes a ``Capture`` (or ``Regions``) and returns arrays or small named
results; ``pmviz.plotting`` draws them. No Python loop runs per page or per region.

Whole-capture analyses read the capture chunk by chunk (``Capture.chunks`` /
``Capture.changes``), never as one all-snapshot array: memory is one chunk plus the result,
however long the recording. Where it helps they use the change form (``heatmap_grid`` and
``dump_size`` replay region changes: a region that stays costs nothing).
"""

from __future__ import annotations

from .axis import AddressAxis, address_axis
from .diff import DiffGrid, SnapshotDiff, diff_grid, snapshot_diff
from .heatmap import HeatmapGrid, heatmap_grid, heatmap_grids, snapshot_cells
from .hilbert import HilbertMap, hilbert_d2xy, hilbert_map
from .migration import CRIU_DUMP_MASK, PrecopyEstimate, dirty_bytes, dump_size, precopy_estimate
from .sanitizers import (
    ShadowMap,
    app_to_shadow,
    detect_sanitizer,
    materialised_shadow,
    shadow_ranges,
    shadow_to_app,
)
from .session import (
    ProcessSeries,
    ProcessTree,
    SharedWrites,
    TreeTotals,
    accounting_series,
    process_series,
    process_tree,
    shared_writes,
    tree_totals,
)
from .sparsity import Sparsity, sparsity
from .working_set import (
    IdleTime,
    Temperature,
    WorkingSet,
    WssCurve,
    cumulative_written,
    idle_time,
    temperature,
    working_set_size,
    wss_curve,
)

__all__ = [
    "AddressAxis",
    "address_axis",
    "HeatmapGrid",
    "heatmap_grid",
    "heatmap_grids",
    "snapshot_cells",
    "WorkingSet",
    "working_set_size",
    "cumulative_written",
    "WssCurve",
    "wss_curve",
    "IdleTime",
    "idle_time",
    "Temperature",
    "temperature",
    "Sparsity",
    "sparsity",
    "ShadowMap",
    "detect_sanitizer",
    "shadow_ranges",
    "shadow_to_app",
    "app_to_shadow",
    "materialised_shadow",
    "SnapshotDiff",
    "snapshot_diff",
    "DiffGrid",
    "diff_grid",
    "CRIU_DUMP_MASK",
    "dump_size",
    "dirty_bytes",
    "PrecopyEstimate",
    "precopy_estimate",
    "HilbertMap",
    "hilbert_d2xy",
    "hilbert_map",
    "TreeTotals",
    "tree_totals",
    "ProcessSeries",
    "accounting_series",
    "process_series",
    "ProcessTree",
    "process_tree",
    "SharedWrites",
    "shared_writes",
]
