"""The Jupyter kernel the notebook tests run in: this environment's ``pmviz`` kernelspec.

``make install`` / ``make install-test`` / ``make kernelspec`` install it
(``ipykernel install --sys-prefix --name pmviz``) and every notebook selects it, so neither
JupyterLab nor the tests run a ``python3`` kernelspec that may belong to another environment
(a stale one in ``~/.local`` is searched first).
"""

from __future__ import annotations

import os
import shutil
import sys

KERNEL_NAME = "pmviz"


def pmviz_kernel() -> str:
    """``"pmviz"``, after checking that kernelspec runs this very Python.

    Raises
    ------
    RuntimeError
        It is missing or runs another interpreter: the message says to run ``make kernelspec``.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
    except NoSuchKernel:
        raise RuntimeError(
            f"no {KERNEL_NAME!r} Jupyter kernel: run `make kernelspec` (or `make install`)"
        ) from None
    exe = shutil.which(spec.argv[0]) or spec.argv[0]
    if os.path.realpath(exe) != os.path.realpath(sys.executable):
        raise RuntimeError(
            f"the {KERNEL_NAME!r} kernel ({spec.resource_dir}) runs {exe}, not this "
            f"environment's {sys.executable}: run `make kernelspec`"
        )
    return KERNEL_NAME
