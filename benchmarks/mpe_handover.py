"""A retired probe: its conclusions are in docs/, its code in history."""

raise SystemExit("benchmarks/mpe_handover.py is retired; its results are recorded in docs/ and its code is in history: "
                 "git show d36ac3d:benchmarks/mpe_handover.py (run it from a checkout of that commit)")
