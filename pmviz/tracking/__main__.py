"""``python -m pmviz.tracking ARGV``: the child side of ``spawn_tracked_python``."""

import sys

from .child import run_child

run_child(sys.argv[1:])
