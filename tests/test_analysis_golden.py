"""Every analysis on the bundled captures equals the results stored before the streaming rewrite.

``tests/golden/analysis.npz`` was written by ``tests/golden/golden_analysis.py`` from the
dense (all snapshots in memory) implementation. Integer results (bytes, regions, counts,
addresses) must match bit for bit; float grids (heatmap, diff and Hilbert fractions) whose
sums the chunked code may add in another order match to float rounding (rtol 1e-12).
"""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "golden"))

import golden_analysis as golden  # noqa: E402


@pytest.fixture(scope="module")
def stored():
    if not all(os.path.isdir(os.path.join(golden.SAMPLES, f"{n}.pmviz")) for n in golden.CAPTURES):
        pytest.skip("sample captures not built")
    with np.load(golden.GOLDEN) as z:
        return {k: z[k] for k in z.files}


@pytest.mark.parametrize("name", golden.CAPTURES)
def test_results_equal_the_golden_ones(stored, name):
    now = golden.compute((name,))
    want = {k: v for k, v in stored.items() if k.startswith(f"{name}/")}
    assert sorted(now) == sorted(want)
    for key, v in want.items():
        golden.assert_same(key, now[key], v)
