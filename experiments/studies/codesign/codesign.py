"""Study 1: the survey's co-design search (Kim et al. 2023, Sec. 6.4) at this machine's scale.

For each corpus: train a supernet on the `tiny` space (`nas train-supernet`), search it against
EDP on `gemmini-transformer` with the survey's defaults (population 40, 40 generations, mutation
0.2; `nas search`, which builds the lookup table for the supernet's context and vocabulary),
report the EDP, latency and energy reductions against the largest subnet at <= +0.1 and <= +1
perplexity, then retrain the picked architectures and the largest one from scratch
(`nas train-subnet`, same recipe and steps) and evaluate all of them on the same validation
tokens, to check that the inherited-weight perplexities hold.

Training runs `supernet.train.train` (what `nas train-supernet` / `train-subnet` run), the
search `nas.pipeline.run_search` (what `nas search` runs); every stage is skipped when its output
exists, and an interrupted one continues.

    python experiments/studies/codesign/codesign.py         # both corpora, the config below
    (writes codesign_<corpora>.json and .png here; checkpoints and searches under
    runs/codesign/ at the repository root)
    python experiments/studies/codesign/codesign.py --corpus tinyshakespeare --steps 300
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))        # experiments/studies: common.py

from common import ROOT, SHARED_DATA, pyplot, save_figure

from costmodel.simulate import SIMULATOR_VERSION
from nas.core.arch import Arch
from nas.core.provenance import provenance, write_result
from nas.pipeline import SearchJob, run_search
from nas.search.candidate import PPL_DELTAS, reductions
from nas.search.config import SearchConfig
from nas.search.outputs import read_front

PUBLISHED = {"edp": (2.2, 10.6), "latency": (1.4, 2.4), "energy": (1.6, 4.4)}  # survey Sec. 6.4


@dataclass(frozen=True)
class Corpus:
    name: str
    dataset: str                # what `--dataset` gets
    tokenizer: str


CORPORA = {
    "tinyshakespeare": Corpus("tinyshakespeare",
                              str(SHARED_DATA / "tinyshakespeare" / "input.txt"),
                              "char"),
    "wikitext-2": Corpus("wikitext-2", str(SHARED_DATA / "wikitext-2"), "word"),
}


@dataclass(frozen=True)
class Config:
    corpora: tuple[str, ...] = ("tinyshakespeare", "wikitext-2")
    space: str = "tiny"
    hw: str = "gemmini-transformer"
    steps: int = 1500             # supernet and retraining steps (same recipe for both)
    block_size: int = 64
    population: int = 40          # the survey's defaults
    generations: int = 40
    mutation_prob: float = 0.2
    search_tokens: int = 8192     # validation tokens per perplexity during the search
    check_tokens: int = 32768     # validation tokens for the retraining check
    seed: int = 0
    threads: int | None = None


def train_run(cfg: Config, corpus: Corpus, out: Path, arch: str | None = None) -> None:
    """`nas train-supernet` (or `train-subnet` with `arch`) into `out`: trained, continued with
    the run's own settings, or reused when finished (supernet.train.train_run)."""
    from supernet.config import TrainConfig
    from supernet.train import train_run as train_or_reuse
    train_or_reuse(TrainConfig(out=str(out), space=cfg.space, arch=arch, dataset=corpus.dataset,
                               tokenizer=corpus.tokenizer, steps=cfg.steps,
                               block_size=cfg.block_size, seed=cfg.seed, threads=cfg.threads,
                               progress=False))


def train_supernet(cfg: Config, corpus: Corpus, run: Path) -> Path:
    out = run / "supernet"
    train_run(cfg, corpus, out)
    return out


def search(cfg: Config, ckpt: Path, run: Path) -> Path:
    out = run / "search"
    done = out / "search.json"
    if not done.exists() or json.loads(done.read_text())["generations_done"] < cfg.generations:
        config = SearchConfig(population=cfg.population, generations=cfg.generations,
                              mutation_prob=cfg.mutation_prob, seed=cfg.seed)
        run_search(SearchJob(ckpt=str(ckpt), out=out, config=config, hw=cfg.hw,
                             max_tokens=cfg.search_tokens, threads=cfg.threads, progress=False,
                             resume=(out / "state.pkl").exists()))
    return out


def read_out(search_dir: Path) -> dict:
    """EDP, latency and energy of the largest subnet over those of the lowest-EDP evaluated
    candidate within +0.1 and +1 perplexity of it (the survey's Fig. 26 read-out)."""
    doc = json.loads((search_dir / "search.json").read_text())
    front = read_front(search_dir)
    L = front.largest
    out = {"largest": {"key": L.key, "perplexity": L.perplexity, "edp": L.edp,
                       "latency_ms": L.latency_ms, "energy_mj": L.energy_mj,
                       "params": L.params}, "at": []}
    for r in reductions(front.history(), L, "edp", PPL_DELTAS):
        if r.pick is None:
            out["at"].append({"delta": r.delta, "key": None})
            continue
        out["at"].append({"delta": r.delta, "key": r.pick.key, "perplexity": r.pick.perplexity,
                          "edp_reduction": r.factor,
                          "latency_reduction": L.latency_ms / r.pick.latency_ms,
                          "energy_reduction": L.energy_mj / r.pick.energy_mj})
    out["hypervolume_final"] = doc["hypervolume"][-1]
    out["evaluations"], out["front_size"] = doc["evaluations"], doc["front_size"]
    return out


def retrain_check(cfg: Config, corpus: Corpus, run: Path, supernet: Path, keys: list[str]) -> list:
    """Train each architecture alone, then compare its perplexity with the inherited one on the
    same `check_tokens` validation tokens."""
    from supernet.evaluate import SupernetEvaluator

    inherited_eval = SupernetEvaluator(supernet, max_tokens=cfg.check_tokens)
    archs = [Arch.from_key(k) for k in keys]
    inherited = inherited_eval.perplexity(archs)
    rows = []
    for arch, ppl in zip(archs, inherited):
        out = run / "retrain" / arch.key
        train_run(cfg, corpus, out, arch=arch.key)
        alone = SupernetEvaluator(out, max_tokens=cfg.check_tokens).perplexity([arch])[0]
        rows.append({"key": arch.key, "params": arch.params(inherited_eval.vocab_size,
                                                            inherited_eval.block_size),
                     "inherited_ppl": ppl, "standalone_ppl": alone})
    return rows


def run(cfg: Config, runs: Path) -> dict:
    results = {"config": asdict(cfg), "published": PUBLISHED, "corpora": {}}
    for name in cfg.corpora:
        corpus = CORPORA[name]
        run_dir = runs / name
        t0 = time.time()
        supernet = train_supernet(cfg, corpus, run_dir)
        t1 = time.time()
        search_dir = search(cfg, supernet, run_dir)
        t2 = time.time()
        red = read_out(search_dir)
        keys = [red["largest"]["key"]] + [a["key"] for a in red["at"] if a["key"]]
        keys = list(dict.fromkeys(keys))
        check = retrain_check(cfg, corpus, run_dir, supernet, keys)
        results["corpora"][name] = {**red, "retrain": check, "seconds": {
            "supernet": round(t1 - t0, 1), "search": round(t2 - t1, 1),
            "retrain": round(time.time() - t2, 1)}, "search_dir": str(search_dir)}
    return results


def plot(results: dict, path: Path) -> None:
    plt = pyplot()
    names = list(results["corpora"])
    fig, axes = plt.subplots(1, len(names), figsize=(6 * len(names), 4.5), squeeze=False)
    for ax, name in zip(axes[0], names):
        history = read_front(results["corpora"][name]["search_dir"]).history()
        edp_of = {c.key: c.edp for c in history}
        ax.scatter([c.edp for c in history], [c.perplexity for c in history], s=8, alpha=0.4,
                   label="evaluated")
        L = results["corpora"][name]["largest"]
        ax.scatter([L["edp"]], [L["perplexity"]], marker="*", s=150, c="k", label="largest")
        for d, style in zip(PPL_DELTAS, ("--", ":")):
            ax.axhline(L["perplexity"] + d, ls=style, c="gray", label=f"+{d:g} perplexity")
        for r in results["corpora"][name]["retrain"]:
            ax.scatter([edp_of[r["key"]]], [r["standalone_ppl"]], marker="x", c="r", s=60)
        ax.scatter([], [], marker="x", c="r", label="retrained alone")
        ax.set_xscale("log")
        ax.set_xlabel("EDP (J s), gemmini-transformer")
        ax.set_ylabel("validation perplexity")
        ax.set_title(f"{name}: search on the tiny space")
        ax.legend(fontsize=7)
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=HERE, help="folder for the JSON and PNG")
    p.add_argument("--runs", type=Path, default=ROOT / "runs" / "codesign",
                   help="folder of the checkpoints and searches (one per corpus)")
    p.add_argument("--corpus", action="append", choices=sorted(CORPORA))
    p.add_argument("--steps", type=int)
    p.add_argument("--population", type=int)
    p.add_argument("--generations", type=int)
    p.add_argument("--threads", type=int)
    p.add_argument("--search-tokens", type=int, help="validation tokens per perplexity in the search")
    args = p.parse_args(argv)
    cfg = Config()
    changes = {k: v for k, v in (("steps", args.steps), ("population", args.population),
                                 ("generations", args.generations), ("threads", args.threads),
                                 ("search_tokens", args.search_tokens))
               if v is not None}
    if args.corpus:
        changes["corpora"] = tuple(args.corpus)
    cfg = replace(cfg, **changes)
    for name in cfg.corpora:
        if not Path(CORPORA[name].dataset).exists():
            print(f"codesign: {CORPORA[name].dataset} not found (see ../shared/data)",
                  file=sys.stderr)
            return 2
    prov = provenance(simulator_version=SIMULATOR_VERSION)
    results = run(cfg, args.runs)
    stem = "codesign_" + "_".join(cfg.corpora)
    write_result(args.out / f"{stem}.json", results, prov)
    plot(results, args.out / f"{stem}.png")
    for name, r in results["corpora"].items():
        print(f"{name}: largest {r['largest']['key']} perplexity {r['largest']['perplexity']:.3f}")
        for a in r["at"]:
            if a["key"]:
                print(f"  <= +{a['delta']:g} perplexity: EDP {a['edp_reduction']:.2f}x, latency "
                      f"{a['latency_reduction']:.2f}x, energy {a['energy_reduction']:.2f}x "
                      f"({a['key']}, perplexity {a['perplexity']:.3f})")
        for c in r["retrain"]:
            print(f"  {c['key']}: inherited {c['inherited_ppl']:.3f}, alone "
                  f"{c['standalone_ppl']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
