"""A retired probe: its conclusions are in docs/, its code in history."""

raise SystemExit("benchmarks/mamujoco_info_gap.py is retired; its results are recorded in docs/ and its code is in history: "
                 "git show d36ac3d:benchmarks/mamujoco_info_gap.py (run it from a checkout of that commit)")
