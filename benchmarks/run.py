"""anypool side by side with joblib, loky, mpire, pebble, multiprocessing and
concurrent.futures: issue 4's scenarios S1-S8, interleaved, each run in a fresh process.

Run: make benchmarks                        (installs the bench extra, runs everything)
     .venv/bin/python benchmarks/run.py --quick              (small sizes: does it work?)
     .venv/bin/python benchmarks/run.py --scenarios S1,S3 --repeat 7 --out s1s3.md
     python benchmarks/run.py --scenarios S8 --out s8.md     (needs no NumPy or Pillow)

Writes a markdown section for benchmarks/RESULTS.md (``--out``, default bench-peers.md)
and the same figures, with every run's raw numbers, as JSON beside it. See
docs/benchmarks.md for what each scenario measures and how.
"""

from __future__ import annotations

import sys
from pathlib import Path

# The trial processes find peerbench through PYTHONPATH, set by the runner from sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from peerbench.cli import main

if __name__ == "__main__":
    sys.exit(main())
