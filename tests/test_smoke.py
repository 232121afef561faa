"""Import-level guarantees that every other test relies on."""

import subprocess
import sys


def test_import_pmviz_does_not_import_matplotlib_or_ipywidgets():
    code = (
        "import sys, pmviz; pmviz.scan(); "
        "bad = [m for m in ('matplotlib', 'ipywidgets', 'pandas') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_public_api_names_resolve():
    import pmviz

    missing = [n for n in pmviz.__all__ if n not in pmviz._LAZY and not hasattr(pmviz, n)]
    assert missing == []
