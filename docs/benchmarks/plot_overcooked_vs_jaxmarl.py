"""Plot docs/benchmarks/overcooked-vs-jaxmarl.json as docs/figures/overcooked-vs-jaxmarl.png.

    .venv/bin/python docs/benchmarks/plot_overcooked_vs_jaxmarl.py
"""

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).parent
data = json.loads((HERE / "overcooked-vs-jaxmarl.json").read_text())
figure, (by_time, by_steps) = plt.subplots(1, 2, figsize=(10, 3.8))
LABELS = {"jaxmarl": "JaxMARL IPPO-FF (JAX, 1 core)", "srpo": "srpo IPPO (torch, 1 core)"}
for name, label in LABELS.items():
    steps, wall, score = zip(*data[name]["curve"], strict=True)
    by_time.plot(wall, score, label=label)
    by_steps.plot([s / 1e6 for s in steps], score, label=label)
for axis, xlabel in ((by_time, "wall time (s)"), (by_steps, "env steps (millions)")):
    axis.axhline(200, color="grey", linewidth=0.8, linestyle=":")
    axis.set_xlabel(xlabel)
    axis.set_ylabel("sparse return per episode")
    axis.grid(alpha=0.3)
by_time.legend(loc="lower right")
figure.suptitle("IPPO on overcooked cramped_room, side by side on one 2-core machine")
figure.tight_layout()
figure.savefig(HERE.parent / "figures" / "overcooked-vs-jaxmarl.png", dpi=110)
