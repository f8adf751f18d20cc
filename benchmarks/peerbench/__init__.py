"""peerbench: anypool side by side with its peers, on the same work, in the same run.

Modules:

- ``framework``: Settings, Job, Contender, Scenario — what a scenario is made of.
- ``pools``: map contenders shared by several scenarios (anypool and every peer).
- ``s1_tiny`` … ``s7_latency``: the scenarios of issue 4 (S8 lives with S2 in ``s2_cpu``).
- ``runner``: interleaves the trials and runs each in a fresh process with a timeout.
- ``trial``: the entry point of that process; times the one contender.
- ``memory``: peak PSS of a process tree (S4).
- ``stats``, ``summary``: medians, spreads, ratios; ``report``: markdown and JSON.
- ``cli``: ``python benchmarks/run.py``.
"""

from __future__ import annotations

#: The module defining each scenario key, in the order the suite runs them.
SCENARIO_MODULES = {
    "S1": "peerbench.s1_tiny",
    "S2": "peerbench.s2_cpu",
    "S3": "peerbench.s3_io",
    "S4": "peerbench.s4_array",
    "S5": "peerbench.s5_native",
    "S6": "peerbench.s6_pillow",
    "S7": "peerbench.s7_latency",
    "S8": "peerbench.s2_cpu",
}

__all__ = ["SCENARIO_MODULES"]
