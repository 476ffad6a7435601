"""Peak memory of training on a 1M-transition MaMuJoCo dataset or SMAC vault against its in-memory size.

    OMP_NUM_THREADS=1 python benchmarks/mamujoco_memory.py            # 1M transitions, writes docs/results_mamujoco.md
    OMP_NUM_THREADS=1 python benchmarks/mamujoco_memory.py --layouts smac-3m-vault   # writes docs/results_smax.md

Phase 1 (own process) writes a dataset of ``--transitions`` (1000-step episodes, random values with the shapes and
dtypes of real data) straight into the cache under the name ``MaMuJoCoDataModule`` looks for, or (``smac-3m-vault``)
an OG-MARL vault in the published layout with the shapes of ``og_marl/smac_v1/3m`` (obs 3x30, state 48, 9 int
actions with legal masks, 20-step episodes) that ``SMACVaultDataModule`` streams, for each layout of
``--layouts``: ``2x3`` is our generated HalfCheetah 2x3 (obs 2x12, state 17, actions 2x3); ``omiga-6x1`` is the
shape of the public OMIGA 6halfcheetah data the paper trains on (obs 6x23 = state 17 + one-hot id, actions 6x1). Phase 2 (a fresh process) runs the real CLI
``fit`` of the FlowTeacher for ``--steps`` gradient steps on it (prepare_data finds the cache, setup loads it,
RandomBatches samples it) and reports ``ru_maxrss``: peak RSS of the whole process (Python, torch, Lightning,
model, data), the RSS before the data was loaded, and ``TransitionData.nbytes()``. Phase 0 measures the fixed cost:
``ru_maxrss`` of fresh processes that only ``import torch``, only ``import lightning.pytorch`` and import what the
training process imports (``macflow.cli``, ``macflow.modules``, ``macflow.datamodules``), so the doc can say how much
of the peak is the framework and how much is the data.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
START, END = "<!-- memory:start -->", "<!-- memory:end -->"


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)) / 1024


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


LAYOUTS = {"2x3": {"agent_conf": "2x3", "obs_layout": "mamujoco"},
           "omiga-6x1": {"agent_conf": "6x1", "obs_layout": "omiga"},
           "smac-3m-vault": {"vault": "smac_v1/3m"}}
"""Dataset shapes to measure: the datamodule arguments that give them (``vault``: a SMAC vault's shapes)."""
SMAC_3M = {"n_agents": 3, "obs": 30, "state": 48, "actions": 9, "episode": 20}
"""Shapes of og_marl smac_v1/3m (datasets.md §2)."""


def is_vault(layout: str) -> bool:
    return "vault" in LAYOUTS[layout]


def datamodule_class(layout: str) -> str:
    return "macflow.datamodules.smax.SMACVaultDataModule" if is_vault(layout) else \
        "macflow.datamodules.MaMuJoCoDataModule"


def datamodule_args(layout: str, transitions: int, cache: str) -> dict:
    if is_vault(layout):
        return {"path": f"{cache}/3m.vlt/Good"}
    return {"scenario": "HalfCheetah", **LAYOUTS[layout], "quality": "medium", "n_episodes": transitions // 1000,
            "cache_dir": cache}


def write_smac_vault(cache: str, transitions: int) -> None:
    """A vault of ``transitions`` timesteps (one batch row) with og_marl smac_v1/3m's shapes and dtypes."""
    import numpy as np

    from macflow.datamodules.vault import write_vault

    n, d, t = SMAC_3M["n_agents"], SMAC_3M, transitions
    rng = np.random.default_rng(0)
    legals = (rng.random((1, t, n, d["actions"]), dtype=np.float32) < 0.6).astype(np.float32)
    legals[..., 1] = 1.0
    actions = np.where(legals > 0, rng.random(legals.shape, dtype=np.float32), -1.0).argmax(-1).astype(np.int32)
    terminals = np.zeros((1, t, n), np.float32)
    terminals[:, d["episode"] - 1::d["episode"]] = 1.0
    write_vault(f"{cache}/3m.vlt/Good", {
        "observations": rng.standard_normal((1, t, n, d["obs"]), dtype=np.float32), "actions": actions,
        "rewards": np.repeat(rng.standard_normal((1, t, 1), dtype=np.float32), n, -1), "terminals": terminals,
        "truncations": np.zeros((1, t, n), np.float32),
        "infos": {"legals": legals, "state": rng.standard_normal((1, t, d["state"]), dtype=np.float32)}})


def write_dataset(cache: str, transitions: int, layout: str) -> None:
    if is_vault(layout):
        return write_smac_vault(cache, transitions)
    import numpy as np
    import torch

    from macflow.datamodules import MaMuJoCoDataModule, TransitionData

    dm = MaMuJoCoDataModule(**datamodule_args(layout, transitions, cache), progress=False)
    n, o, a, st = dm.n_agents, dm.obs_dim, dm.action_dim, dm.state_dim
    ep_len, n_eps = 1000, transitions // 1000
    m = n_eps * (ep_len + 1)
    rng = np.random.default_rng(0)
    idx = (np.arange(n_eps)[:, None] * (ep_len + 1) + np.arange(ep_len)[None]).reshape(-1)
    data = TransitionData(
        observations=torch.from_numpy(rng.standard_normal((m, n, o), dtype=np.float32)),
        obs_index=torch.from_numpy(idx), next_obs_index=torch.from_numpy(idx + 1),
        actions=torch.from_numpy(rng.uniform(-1, 1, (n_eps * ep_len, n, a)).astype(np.float32)),
        rewards=torch.from_numpy(rng.standard_normal(n_eps * ep_len, dtype=np.float32)),
        terminals=torch.zeros(n_eps * ep_len, dtype=torch.bool),
        episode_ids=torch.from_numpy(np.repeat(np.arange(n_eps), ep_len)),
        states=torch.from_numpy(rng.standard_normal((m, st), dtype=np.float32)))
    from macflow.datagen.mamujoco import BUDGETS

    # the budget the datamodule expects, so prepare_data takes the file as current instead of generating data
    data.save(dm.dataset_path(), {"synthetic": True, "transitions": int(data.n_transitions),
                                  "budget": BUDGETS[dm.budget].as_dict()})


def train(cache: str, transitions: int, steps: int, layout: str) -> dict:
    import torch
    from lightning.pytorch import Callback

    from macflow.cli import main as cli_main

    torch.set_num_threads(1)
    marks: dict = {"rss_after_imports_mb": rss_mb()}

    class Probe(Callback):
        def on_fit_start(self, trainer, pl_module):
            marks["nbytes_mb"] = trainer.datamodule.data.nbytes() / 2**20
            marks["n_transitions"] = trainer.datamodule.data.n_transitions
            dm = trainer.datamodule
            marks["shapes"] = (f"obs {dm.n_agents}x{dm.obs_dim}, state {dm.state_dim}, "
                               f"actions {dm.n_agents}x{dm.action_dim}")
            marks["peak_rss_at_fit_start_mb"] = peak_mb()
            marks["rss_at_fit_start_mb"] = rss_mb()

    sys.argv = ["macflow"]
    data = [f"--data.{k}={v}" for k, v in datamodule_args(layout, transitions, cache).items()]
    cli = cli_main(["--model=macflow.modules.FlowTeacher", f"--data={datamodule_class(layout)}", *data,
                    "--data.batch_size=256", f"--trainer.max_steps={steps}", "--trainer.limit_val_batches=0",
                    "--trainer.num_sanity_val_steps=0", "--trainer.accelerator=cpu", "--trainer.logger=false",
                    "--trainer.enable_checkpointing=false", "--trainer.enable_progress_bar=false",
                    "--trainer.enable_model_summary=false", f"--trainer.default_root_dir={cache}/runs"], run=False)
    marks["rss_before_data_mb"] = rss_mb()
    cli.trainer.callbacks.append(Probe())
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    marks.update(peak_rss_mb=peak_mb(), rss_end_mb=rss_mb(), steps=int(cli.trainer.global_step))
    if not is_vault(layout):
        from macflow.datamodules import TransitionData

        if not TransitionData.load_manifest(cli.datamodule.dataset_path()).get("synthetic"):
            raise SystemExit("the training process generated its own dataset instead of loading the written one: "
                             "its peak is not the loading peak (see write_dataset's manifest)")
    return marks


IMPORTS = {"import_torch_mb": "torch", "import_lightning_mb": "lightning.pytorch",
           "import_macflow_mb": "macflow.cli, macflow.modules, macflow.datamodules"}


def import_costs(env: dict) -> dict:
    """``ru_maxrss`` (MiB) of a fresh interpreter after each import line of ``IMPORTS``."""
    code = "import resource, sys; sys.path.insert(0, {!r}); import {}; " \
           "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
    return {k: float(subprocess.run([sys.executable, "-c", code.format(str(REPO), mods)], check=True, env=env,
                                     capture_output=True, text=True).stdout.split()[-1])
            for k, mods in IMPORTS.items()}


def write_doc(out: Path, results: dict[str, dict], cmd: str) -> None:
    vault = all(is_vault(layout) for layout in results)
    rows = []
    for layout, r in results.items():
        ratio, extra = r["peak_rss_mb"] / r["nbytes_mb"], (r["peak_rss_mb"] - r["rss_before_data_mb"]) / r["nbytes_mb"]
        rows.append(f"| {layout} ({r['shapes']}) | {r['nbytes_mb']:.0f} MiB | {r['rss_before_data_mb']:.0f} MiB | "
                    f"{r['rss_at_fit_start_mb']:.0f} MiB | {r['peak_rss_at_fit_start_mb']:.0f} MiB | "
                    f"{r['peak_rss_mb']:.0f} MiB ({' / '.join(f'{x:.0f}' for x in r['peak_runs_mb'])}) | "
                    f"{ratio:.2f}× | {extra:.2f}× | "
                    f"**{'met' if ratio <= 2 else 'missed'}** |")
    r = next(iter(results.values()))
    extra = (r["peak_rss_mb"] - r["rss_before_data_mb"]) / r["nbytes_mb"]
    what = "an OG-MARL SMAC vault, SMACVaultDataModule" if vault else "HalfCheetah"
    text = (f"{START}\n## Memory: training on {r['n_transitions']:,} transitions\n\n"
            f"`{cmd}` ({what}, FlowTeacher, batch 256, {r['steps']} steps, CPU; the data written once per layout, then trained on "
            f"in {len(r['peak_runs_mb'])} fresh processes).\n\n"
            "| layout | dataset in memory (`TransitionData.nbytes`) | RSS before loading data | RSS after loading "
            "(fit start) | peak RSS at fit start | peak RSS | peak / dataset | (peak − RSS before data) / dataset "
            "| peak ≤ 2× dataset |\n|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
            + ("`smac-3m-vault` is a vault (one batch row) in the published layout with the shapes of "
               "og_marl smac_v1/3m (about 996k timesteps per quality): int actions become one-hot, legal masks "
               "bool, and the vault is streamed in time chunks into the final tables (each value read once). "
               if vault else
               "`2x3` is the shape of our generated HalfCheetah data; `omiga-6x1` the shape of the public OMIGA "
               "6halfcheetah data (1,001,000 transitions per quality), the MaMuJoCo dataset the paper trains on. ") +
            "Peak RSS is `ru_maxrss` of the whole training process (Python, torch, Lightning and the model "
            f"included): the highest of {len(r['peak_runs_mb'])} fresh training processes on the same data, every "
            "run's peak in brackets (the allocator's slack varies from process to process). The data costs one "
            "observation table plus index arrays (`next_obs` is an index, not a copy); "
            "the transient between 'RSS after loading' and 'peak RSS at fit start' happens while the data is loaded "
            "and validated (`TransitionData.load` / construction), before training starts.\n\n"
            "Fixed cost, before any data (`ru_maxrss` of fresh processes that only import): "
            f"`import torch` {r['import_torch_mb']:.0f} MiB, `import lightning.pytorch` "
            f"{r['import_lightning_mb']:.0f} MiB, the training process's imports (`macflow.cli`, `macflow.modules`, "
            f"`macflow.datamodules`: torch, Lightning, jsonargparse) {r['import_macflow_mb']:.0f} MiB. "
            f"Lightning's own import chain loads torch._dynamo (and through it sympy), scipy.signal, torchmetrics "
            f"and matplotlib; macflow adds {r['import_macflow_mb'] - r['import_lightning_mb']:.0f} MiB on top. "
            f"With that fixed cost, the 2× target needs a dataset of at least "
            f"{r['rss_before_data_mb'] / (2 - extra) if extra < 2 else float('inf'):.0f} MiB at the data-side ratio "
            f"measured on the first layout ({extra:.2f}×); at {r['nbytes_mb']:.0f} MiB the framework alone is "
            f"{r['rss_before_data_mb'] / r['nbytes_mb']:.2f}× that dataset.\n"
            f"{END}\n")
    old = out.read_text() if out.exists() else ("# SMAX results\n\n" if vault else "# MaMuJoCo results\n\n")
    if START in old:
        old = old[:old.index(START)] + old[old.index(END) + len(END) + 1:]
    out.write_text(old.rstrip("\n") + "\n\n" + text)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--transitions", type=int, default=1_000_000)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--repeats", type=int, default=3, help="training processes per layout; the table shows the one "
                   "with the highest peak")
    p.add_argument("--layouts", nargs="+", choices=list(LAYOUTS), default=list(LAYOUTS))
    p.add_argument("--out", default=None, help="default: docs/results_smax.md for vault layouts, else "
                   "docs/results_mamujoco.md")
    p.add_argument("--phase", choices=["all", "write", "train"], default="all")
    p.add_argument("--layout", choices=list(LAYOUTS), default="2x3", help="(internal) the layout of one phase")
    p.add_argument("--cache", default=None)
    a = p.parse_args()
    vault_only = all(is_vault(layout) for layout in a.layouts)
    default_out = str(REPO / ("docs/results_smax.md" if vault_only else "docs/results_mamujoco.md"))
    a.out = a.out or default_out
    if a.phase == "write":
        return write_dataset(a.cache, a.transitions, a.layout)
    if a.phase == "train":
        return print("RESULT " + json.dumps(train(a.cache, a.transitions, a.steps, a.layout)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    costs = import_costs(env)
    results = {}
    for layout in a.layouts:
        with tempfile.TemporaryDirectory() as cache:
            base = [sys.executable, __file__, f"--transitions={a.transitions}", f"--steps={a.steps}",
                    f"--cache={cache}", f"--layout={layout}"]
            subprocess.run(base + ["--phase=write"], check=True, env=env)
            runs = []
            for _ in range(a.repeats):
                out = subprocess.run(base + ["--phase=train"], check=True, env=env, capture_output=True, text=True)
                line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
                runs.append(json.loads(line[len("RESULT "):]))
        worst = max(runs, key=lambda r: r["peak_rss_mb"])  # the allocator's slack varies from process to process
        results[layout] = worst | costs | {"peak_runs_mb": [r["peak_rss_mb"] for r in runs]}
        print(layout, json.dumps(results[layout], indent=1), flush=True)
    cmd = "python benchmarks/mamujoco_memory.py"
    cmd += "" if a.transitions == 1_000_000 else f" --transitions {a.transitions}"
    cmd += "" if a.layouts == list(LAYOUTS) else f" --layouts {' '.join(a.layouts)}"
    cmd += "" if a.repeats == 3 else f" --repeats {a.repeats}"
    if a.transitions == 1_000_000 or a.out != default_out:
        write_doc(Path(a.out), results, cmd)


if __name__ == "__main__":
    main()
