"""Speed of descend against its peers, measured in one process on the same data.

Run from the repository root::

    python -m benchmarks                 # every row, default sizes, CPU
    python -m benchmarks --quick         # small sizes, one repeat: a smoke test
    python -m benchmarks --rows 1,4      # some rows (numbers or names)
    python -m benchmarks --device gpu    # JAX and torch on the GPU

The results (tables, ratios, notes, machine description) are written to
``benchmarks/RESULTS.md`` (``RESULTS-gpu.md`` on a GPU) and the scaling plot beside it.
Rows live in :mod:`benchmarks.rows`, one module each, registered with
:func:`benchmarks.harness.row`.
"""

from __future__ import annotations

import sys
from pathlib import Path

# The benchmarks measure the descend of this checkout, not an installed copy.
_SOURCE = Path(__file__).resolve().parent.parent / "src"
if (_SOURCE / "descend").is_dir() and str(_SOURCE) not in sys.path:
    sys.path.insert(0, str(_SOURCE))
