"""The evolution loop: islands of (1+lambda) Cartesian GP, run in parallel, checkpointed, resumable.

Each island is a (1+lambda) ES with its own random stream. Islands run *epochs* of a fixed number of
generations through ``toolbox.map`` (a process pool when more than one job is used); between epochs
the best circuit migrates, progress is shown, the WCE schedule advances and, every so often, a
checkpoint is written.

Up to 16 input bits every candidate is simulated on every input pair, so its WCE is exact. Above,
the search is counterexample-guided: candidates are simulated on a vector set (a sample, the corner
cases and every counterexample found so far, :func:`evolve.evaluator.search_vectors`), and a
candidate that would become an island's best circuit, or a parent that would migrate, is first
*proven* within the limit on all inputs (:mod:`verify.wce`: exhaustive simulation where it fits
``proof_timeout``, else a SAT miter). A refuted candidate is rejected and its counterexample joins
the vector set of every island (its own at once, the others' at the next epoch); a proof that runs
out of time rejects the candidate too. So the best circuit an island holds, the one that is
checkpointed and shipped, is always proven. Because epochs are counted in generations, not seconds, a run is a
deterministic function of its seed: a time budget only decides after how many epochs it stops.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import signal
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from deap import base, tools

from core.errors import ConfigError
from evolve import app, cgp, kernels
from evolve.evaluator import EXHAUSTIVE_MAX_BITS, Evaluator, search_vectors
from evolve.netlist import Netlist
from verify import wce as prover

CHECKPOINT_FORMAT = "axflow-evolve-checkpoint"
CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class Problem:
    """Everything an island process needs to evaluate circuits; the same for every island."""

    wa: int
    wb: int
    signed: bool
    n_addr: int
    weights: tuple[float, ...]  # cost per gate function code
    max_depth: int
    offspring: int
    ops: tuple[float, ...]
    samples: int
    sample_seed: int
    tiebreak: bool = True
    uphill: float = 0.0  # cost a child may add and still replace a feasible parent
    mutations: int = 1  # most phenotypic mutations per child (uniform in 1..mutations)
    proof_timeout: float = 60.0  # seconds one proof may take (above 16 input bits)
    reference: Netlist | None = field(default=None, compare=False)  # exact netlist for SAT miters
    proofs: bool = True  # False only in `make bench`, to measure what sampling alone would ship
    function_set: str = "gates"  # names the nodes' function set ("gates", or the cell set's key)
    objective: app.ObjectiveSpec | None = None  # power cost, application limits (evolve.app); None: gate costs

    @property
    def proves(self) -> bool:
        """Whether candidates need a proof: above 16 input bits the evaluation is not exhaustive."""
        return self.proofs and self.wa + self.wb > EXHAUSTIVE_MAX_BITS

    def evaluator(self, counterexamples: tuple[int, ...] = ()) -> Evaluator:
        if not self.proves:
            return Evaluator(self.wa, self.wb, self.signed, self.n_addr, children=self.offspring,
                             samples=self.samples, seed=self.sample_seed)
        return Evaluator(self.wa, self.wb, self.signed, self.n_addr, children=self.offspring,
                         vectors=search_vectors(self.wa, self.wb, self.signed, self.samples, self.sample_seed,
                                                counterexamples))

    def prove(self, net: Any, bound: int, threads: int = 1) -> prover.Proof:
        """Prove ``net`` (a gate or cell netlist; the prover reads the generic-gate view) within ``bound``."""
        if not isinstance(net, Netlist):
            net = net.to_generic()
        return prover.check(net, bound, timeout=self.proof_timeout, reference=self.reference, threads=threads)


@dataclass
class Island:
    """One island's state between epochs (picklable: it crosses process boundaries)."""

    net: Netlist
    rng_state: dict[str, Any]
    fitness: tuple[float, ...] = (0.0, 0.0, 0.0)
    wce: int = 0
    best: Netlist | None = None  # lowest-cost circuit within the final limit
    best_cost: float = math.inf
    best_wce: int = 0
    evaluations: int = 0
    candidates: int = 0
    accepted: int = 0
    op_counts: list[int] = field(default_factory=lambda: [0] * kernels.N_OPS)
    proof_times: list[float] = field(default_factory=list)  # seconds of each proof that accepted a best
    refuted: int = 0  # candidates a proof rejected with a counterexample
    unproven: int = 0  # candidates rejected because their proof ran out of time
    counterexamples: list[int] = field(default_factory=list)  # found in the last epoch (vectors)


@dataclass(frozen=True)
class EpochJob:
    island: Island
    generations: int
    limit: int  # WCE limit during this epoch
    final_limit: int  # the run's EPS limit: what the archive accepts
    counterexamples: tuple[int, ...] = ()  # every island's, so far: part of the vector set


# -------------------------------------------------------------------------- worker side
_WORKER: cgp.Context | None = None
_WORKER_PROBLEM: Problem | None = None
_WORKER_CEX: tuple[int, ...] = ()
_WORKER_TOOLBOX: base.Toolbox | None = None  # the island's operators, by DEAP's role names


def init_worker(problem: Problem, ignore_sigint: bool = True) -> None:
    """Build the process's evaluator once (a pool initializer); Ctrl-C is handled by the parent."""
    global _WORKER, _WORKER_PROBLEM, _WORKER_CEX, _WORKER_TOOLBOX
    if ignore_sigint:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    if _WORKER_PROBLEM == problem and _WORKER is not None:
        return
    ev = problem.evaluator()
    _WORKER = cgp.Context(ev, np.array(problem.weights, dtype=np.float64), problem.max_depth,
                          tiebreak=problem.tiebreak, uphill=problem.uphill,
                          objective=problem.objective.build(ev, problem.n_addr, problem.offspring)
                          if problem.objective is not None else None)
    _WORKER_PROBLEM = problem
    _WORKER_CEX = ()
    _WORKER_TOOLBOX = island_toolbox(_WORKER, problem)


def island_toolbox(ctx: cgp.Context, problem: Problem) -> base.Toolbox:
    """The (1+lambda) ES's operators registered under DEAP's roles: ``mutate`` (one phenotypic mutation
    of a child, against its parent's active gates), ``evaluate`` (its fitness, simulated incrementally
    against the parent) and ``select`` (the next parent: neutral drift and threshold accepting)."""
    toolbox = base.Toolbox()
    toolbox.register("mutate", ctx.mutate)
    toolbox.register("evaluate", ctx.evaluate)
    toolbox.register("select", cgp.select, uphill=problem.uphill)
    return toolbox


def _use_counterexamples(ctx: cgp.Context, problem: Problem, cex: tuple[int, ...]) -> Evaluator:
    """Make the worker's evaluator simulate the vector set with these counterexamples."""
    global _WORKER_CEX
    if cex != _WORKER_CEX:
        ctx.evaluator = problem.evaluator(cex)
        if ctx.objective is not None:  # the stream is its own; application limits are exhaustive-only
            ctx.objective.ev = ctx.evaluator
        _WORKER_CEX = cex
    return ctx.evaluator


def _parent_fitness(ctx: cgp.Context, problem: Problem, parent: cgp.Individual, limit: int) -> float:
    """Load ``parent`` into the evaluator's cache and set its fitness; returns its cost."""
    if ctx.objective is not None:
        ob = ctx.objective
        wce, act, cost, sums = ob.load_parent(parent.net, ctx.weights)
        parent.act, parent.wce, parent.app = act, wce, sums
        parent.fitness.values = (ob.excess(wce, limit, sums), cost, ob.tiebreak(wce, sums) if problem.tiebreak else 0.0)
        return cost
    wce, act = ctx.evaluator.load_parent(parent.net)
    parent.act, parent.wce = act, wce
    cost = parent.net.weighted_cost(ctx.weights, act)
    parent.fitness.values = (float(max(0, wce - limit)), cost, float(wce) if problem.tiebreak else 0.0)
    return cost


def run_epoch(job: EpochJob) -> Island:
    """Run one island for ``job.generations`` generations; returns its new state."""
    ctx, problem, toolbox = _WORKER, _WORKER_PROBLEM, _WORKER_TOOLBOX
    assert ctx is not None and problem is not None and toolbox is not None, "init_worker was not called"
    isl = job.island
    cex = tuple(job.counterexamples)
    ev = _use_counterexamples(ctx, problem, cex)
    ctx.limit = job.limit
    cum = np.cumsum(np.array(problem.ops, dtype=np.float64))
    rng = np.random.default_rng()
    rng.bit_generator.state = isl.rng_state

    parent = cgp.Individual(isl.net.copy())
    cost = _parent_fitness(ctx, problem, parent, job.limit)
    dirties = [np.zeros(ev.n_addr, dtype=np.bool_) for _ in range(problem.offspring)]
    best, best_cost, best_wce = isl.best, isl.best_cost, isl.best_wce
    proof_times, refuted, unproven = list(isl.proof_times), isl.refuted, isl.unproven
    found: list[int] = []
    if not problem.proves and parent.wce <= job.final_limit and _app_ok(ctx, parent) and cost < best_cost:
        best, best_cost, best_wce = parent.net.copy(), cost, parent.wce
    evaluations = candidates = accepted = 0
    op_counts = list(isl.op_counts)
    for _ in range(job.generations):
        offspring = []
        for i in range(problem.offspring):
            child = parent.clone()
            child.buf = i + 1
            for _ in range(1 if problem.mutations <= 1 else int(rng.integers(1, problem.mutations + 1))):
                op = toolbox.mutate(child, parent, rng, cum)
                if op >= 0:
                    op_counts[op] += 1
            child.fitness.values = toolbox.evaluate(child, parent, dirties[i])
            evaluations += child.wce >= 0
            offspring.append(child)
        candidates += len(offspring)
        chosen = toolbox.select(parent, offspring)
        if chosen is parent:
            continue
        new_best = chosen.wce <= job.final_limit and _app_ok(ctx, chosen) and chosen.cost < best_cost
        if new_best and problem.proves:
            # it would become the island's best: prove it on all inputs before accepting it
            proof = problem.prove(chosen.net, job.final_limit)
            if not proof.proven:
                if proof.counterexample is None:
                    unproven += 1  # out of time: rejected, never accepted
                    continue
                refuted += 1
                new = prover.refuting_vectors(proof, problem.wb)
                found += new
                cex = tuple(sorted(set(cex) | set(new)))
                ev = _use_counterexamples(ctx, problem, cex)
                _parent_fitness(ctx, problem, parent, job.limit)  # the cache is new: reload the parent
                continue
            proof_times.append(proof.time_s)
        assert chosen.order is not None and chosen.act is not None
        if ctx.objective is not None:
            ctx.objective.commit(chosen.order, dirties[chosen.buf - 1], chosen.buf, chosen.act)
        else:
            ev.commit(chosen.order, dirties[chosen.buf - 1], chosen.buf, chosen.act)
        parent = chosen
        accepted += 1
        if new_best:
            best, best_cost, best_wce = parent.net.copy(), parent.cost, parent.wce
    return Island(net=parent.net, rng_state=dict(rng.bit_generator.state), fitness=parent.fitness.values,
                  wce=parent.wce, best=best, best_cost=best_cost, best_wce=best_wce,
                  evaluations=isl.evaluations + evaluations, candidates=isl.candidates + candidates,
                  accepted=isl.accepted + accepted, op_counts=op_counts, proof_times=proof_times,
                  refuted=refuted, unproven=unproven, counterexamples=found)


def _app_ok(ctx: cgp.Context, ind: cgp.Individual) -> bool:
    """Within the application limits (always, without them): what the archive also asks of a best."""
    return ctx.objective is None or ctx.objective.within_app_limits(ind.app)


# -------------------------------------------------------------------------- driver side
@dataclass
class Schedule:
    """The WCE limit over generations: EPS, or CircuitsDNA's exponential approach from EPS_START."""

    norm: int
    eps: float
    eps_start: float | None = None
    tau: float = 20000.0

    def limit(self, generation: int) -> int:
        eps = self.eps
        if self.eps_start is not None and self.eps_start > self.eps:
            eps = self.eps + (self.eps_start - self.eps) * math.exp(-generation / self.tau)
        return math.floor(eps * self.norm + 1e-9)


@dataclass
class State:
    """The whole search: what a checkpoint holds."""

    islands: list[Island]
    generation: int = 0
    epoch: int = 0
    elapsed: float = 0.0
    logbook: tools.Logbook = field(default_factory=tools.Logbook)  # one record per epoch
    counterexamples: list[int] = field(default_factory=list)  # every refuted candidate's, as vectors

    def add_counterexamples(self, vectors: list[int]) -> None:
        self.counterexamples = sorted(set(self.counterexamples) | set(vectors))


@dataclass
class Outcome:
    state: State
    best: Netlist
    best_cost: float
    best_wce: int
    interrupted: bool
    stop_reason: str
    trail: list[tuple[Any, float]] = field(default_factory=list)  # each new best of this session, with its cost


def new_state(seed_net: Netlist, islands: int, seed: int, weights: np.ndarray, wce: int,
              cost: float | None = None) -> State:
    """Every island starts from ``seed_net`` (feasible, with worst-case error ``wce``) with its own random
    stream spawned from ``seed``; ``cost``: its cost when it is not the gate cost of ``weights``."""
    root = np.random.SeedSequence(seed)
    states = []
    if cost is None:
        cost = seed_net.weighted_cost(weights)
    for child_seq in root.spawn(islands):
        rng = np.random.default_rng(child_seq)
        states.append(Island(net=seed_net.copy(), rng_state=dict(rng.bit_generator.state), fitness=(0.0, cost, float(wce)),
                             wce=wce, best=seed_net.copy(), best_cost=cost, best_wce=wce))
    return State(states)


def make_toolbox(problem: Problem, jobs: int) -> tuple[base.Toolbox, Callable[[], None]]:
    """A DEAP toolbox whose ``map`` runs island epochs, in a pool of ``jobs`` processes when > 1."""
    toolbox = base.Toolbox()
    if jobs > 1:
        ctx = multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn")
        pool = ctx.Pool(jobs, initializer=init_worker, initargs=(problem,))
        toolbox.register("map", pool.map)

        def close() -> None:
            pool.terminate()
            pool.join()
    else:
        init_worker(problem, ignore_sigint=False)
        toolbox.register("map", lambda f, xs: list(map(f, xs)))

        def close() -> None:
            return None
    toolbox.register("epoch", run_epoch)
    return toolbox, close


def evolve(state: State, problem: Problem, schedule: Schedule, *, jobs: int, epoch_generations: int,
           budget: float | None, generations: int | None, migrate_every: int,
           checkpoint: Callable[[State], None], checkpoint_every: float,
           progress: Callable[[State, dict], None], improve: Callable[[State], None] | None = None) -> Outcome:
    """Run epochs until the budget or generation count is reached, or Ctrl-C.

    ``improve`` is called with the state after every migration (every ``migrate_every`` epochs), on this
    process: it may replace an island's parent by a cheaper circuit of the same function.

    The state is checkpointed before the first epoch, then every ``checkpoint_every`` seconds and at the end.
    The first Ctrl-C asks the loop to stop at the end of the epoch under way (a fraction of a second),
    so the state stays whole: it is checkpointed and the outcome comes back with ``interrupted`` set.
    A second Ctrl-C interrupts at once.
    """
    final_limit = schedule.limit(10**12)
    checkpoint(state)  # resumable from the start: a kill before the first minute loses nothing
    toolbox, close = make_toolbox(problem, min(jobs, len(state.islands)))
    session_start = time.monotonic()
    last_ckpt = session_start
    last_epoch_time = 0.0
    stop_reason = ""
    stop = _StopRequest()
    trail: list[tuple[Any, float]] = []
    try:
        while True:
            if stop.requested:
                stop_reason = "interrupted"
                break
            if generations is not None and state.generation >= generations:
                stop_reason = f"{generations} generations"
                break
            spent = time.monotonic() - session_start
            if budget is not None and spent + last_epoch_time > budget:
                stop_reason = f"budget of {budget:g} s"
                break
            gens = epoch_generations if generations is None else min(epoch_generations,
                                                                     generations - state.generation)
            limit = schedule.limit(state.generation)
            t0 = time.monotonic()
            cex = tuple(state.counterexamples)
            results = toolbox.map(toolbox.epoch, [EpochJob(isl, gens, limit, final_limit, cex)
                                                  for isl in state.islands])
            dt = time.monotonic() - t0
            last_epoch_time = dt
            before = sum(i.evaluations for i in state.islands)
            state.islands = list(results)
            for isl in state.islands:
                state.add_counterexamples(isl.counterexamples)
                isl.counterexamples = []
            state.generation += gens
            state.epoch += 1
            state.elapsed += dt
            if migrate_every > 0 and state.epoch % migrate_every == 0:
                _migrate(state, problem, final_limit, jobs)
                if improve is not None:
                    improve(state)
            net, cost, _ = best_of(state)
            if not trail or cost < trail[-1][1]:
                trail.append((net.copy(), cost))
            record = _record(state, limit, final_limit, (sum(i.evaluations for i in state.islands) - before) / dt)
            state.logbook.record(**record)
            progress(state, record)
            if time.monotonic() - last_ckpt >= checkpoint_every:
                checkpoint(state)
                last_ckpt = time.monotonic()
    finally:
        stop.restore()
        close()
    checkpoint(state)
    best, cost, wce = best_of(state)
    return Outcome(state, best, cost, wce, stop_reason == "interrupted", stop_reason, trail)


class _StopRequest:
    """While alive, the first SIGINT only sets ``requested``; the second raises KeyboardInterrupt."""

    def __init__(self) -> None:
        self.requested = False
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def restore(self) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def _migrate(state: State, problem: Problem, final_limit: int, jobs: int) -> None:
    """Every island whose parent is worse than the best parent takes a copy of it.

    Above 16 input bits a feasible parent that would migrate is proven first; a refuted one stays
    where it is and its counterexample joins the vector set.
    """
    islands = state.islands
    best = min(islands, key=lambda i: i.fitness)
    if problem.proves and best.fitness[0] == 0 and any(isl.fitness > best.fitness for isl in islands):
        proof = problem.prove(best.net, final_limit, threads=jobs)
        if not proof.proven:
            if proof.counterexample is not None:
                state.add_counterexamples(prover.refuting_vectors(proof, problem.wb))
            return
    for isl in islands:
        if isl.fitness > best.fitness:
            isl.net, isl.fitness, isl.wce = best.net.copy(), best.fitness, best.wce


def best_of(state: State) -> tuple[Netlist, float, int]:
    """The lowest-cost circuit within the final limit found by any island (the seed at worst)."""
    isl = min((i for i in state.islands if i.best is not None), key=lambda i: (i.best_cost, i.best_wce))
    assert isl.best is not None
    return isl.best, isl.best_cost, isl.best_wce


def _record(state: State, limit: int, final_limit: int, rate: float) -> dict:
    parent = min(state.islands, key=lambda i: i.fitness)
    best = min(state.islands, key=lambda i: i.best_cost)
    return {
        "generation": state.generation, "epoch": state.epoch, "elapsed_s": round(state.elapsed, 3),
        "limit": limit, "final_limit": final_limit, "parent_cost": parent.fitness[1], "parent_wce": parent.wce,
        "best_cost": best.best_cost, "best_wce": best.best_wce,
        "evaluations": sum(i.evaluations for i in state.islands),
        "candidates": sum(i.candidates for i in state.islands),
        "accepted": sum(i.accepted for i in state.islands),
        "evals_per_s": round(rate, 1),
        "proofs": sum(len(i.proof_times) for i in state.islands),
        "refuted": sum(i.refuted for i in state.islands),
        "unproven": sum(i.unproven for i in state.islands),
        "counterexamples": len(state.counterexamples),
    }


def make_logbook(records: list[dict[str, Any]]) -> tools.Logbook:
    """A DEAP logbook holding ``records`` (a checkpoint's), in order."""
    book = tools.Logbook()
    for rec in records:
        book.record(**rec)
    return book


# -------------------------------------------------------------------------- checkpoints
def save_checkpoint(path: Path, state: State, fingerprint: dict[str, Any]) -> None:
    """Write the state as an .npz of arrays plus JSON metadata (no pickle: loading runs no code)."""
    arrays: dict[str, np.ndarray] = {}
    meta_islands = []
    for i, isl in enumerate(state.islands):
        for name, net in (("net", isl.net), ("best", isl.best)):
            if net is None:
                continue
            for part in ("func", "in0", "in1", "in2", "out"):
                if hasattr(net, part):
                    arrays[f"i{i}_{name}_{part}"] = getattr(net, part)
        meta_islands.append({
            "rng_state": isl.rng_state, "fitness": list(isl.fitness), "wce": isl.wce,
            "has_best": isl.best is not None, "best_cost": isl.best_cost, "best_wce": isl.best_wce,
            "evaluations": isl.evaluations, "candidates": isl.candidates, "accepted": isl.accepted,
            "op_counts": isl.op_counts, "proof_times": isl.proof_times, "refuted": isl.refuted,
            "unproven": isl.unproven,
        })
    ref = state.islands[0].net
    meta = {
        "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "fingerprint": fingerprint,
        "generation": state.generation, "epoch": state.epoch, "elapsed": state.elapsed,
        "logbook": list(state.logbook), "islands": meta_islands, "shape": [ref.wa, ref.wb, ref.signed],
        "counterexamples": state.counterexamples,
    }
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, allow_pickle=False, **arrays)
    os.replace(tmp, path)


def checkpoint_elapsed(path: Path) -> float | None:
    """Evolution seconds a checkpoint holds, or None when it cannot be read (resuming then says why)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return float(json.loads(bytes(data["meta"]).decode())["elapsed"])
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError):
        return None


def load_checkpoint(path: Path, fingerprint: dict[str, Any], genome: Callable[..., Any] | None = None) -> State:
    """Read a checkpoint; a corrupt one or one from a different run is a one-line error.

    ``genome(wa, wb, signed, arrays)`` builds a netlist from a dict of its arrays (``func``, ``in0``, ...):
    a cell netlist's maker for the cell function set; generic gates by default."""
    if not path.is_file():
        raise ConfigError(f"no checkpoint at {path}: nothing to resume")
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(bytes(data["meta"]).decode())
            arrays = {k: data[k] for k in data.files if k != "meta"}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError, json.JSONDecodeError):
        raise ConfigError(f"checkpoint {path} is corrupt or truncated: delete it or use --overwrite to "
                          "start again") from None
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        raise ConfigError(f"{path} is not an axflow evolution checkpoint")
    if meta.get("version") != CHECKPOINT_VERSION:
        raise ConfigError(f"checkpoint {path} has version {meta.get('version')}; this axflow reads version "
                          f"{CHECKPOINT_VERSION}")
    theirs = meta.get("fingerprint", {})
    for key in sorted(set(fingerprint) | set(theirs)):
        if theirs.get(key) != fingerprint.get(key):
            raise ConfigError(f"checkpoint {path} belongs to a different run: {key.upper()} is "
                              f"{theirs.get(key)!r} there, {fingerprint.get(key)!r} here")
    wa, wb, is_signed = meta["shape"]
    try:
        islands = []
        for i, m in enumerate(meta["islands"]):
            def net(name: str, i: int = i) -> Any:
                prefix = f"i{i}_{name}_"
                parts = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
                n = (genome(wa, wb, bool(is_signed), parts) if genome is not None else
                     Netlist(wa, wb, bool(is_signed), *(parts[p] for p in ("func", "in0", "in1", "out"))))
                n.check()
                return n

            islands.append(Island(
                net=net("net"), rng_state=m["rng_state"], fitness=tuple(m["fitness"]), wce=m["wce"],
                best=net("best") if m["has_best"] else None, best_cost=m["best_cost"], best_wce=m["best_wce"],
                evaluations=m["evaluations"], candidates=m["candidates"], accepted=m["accepted"],
                op_counts=list(m["op_counts"]), proof_times=[float(x) for x in m.get("proof_times", [])],
                refuted=int(m.get("refuted", 0)), unproven=int(m.get("unproven", 0))))
        counterexamples = [int(v) for v in meta.get("counterexamples", [])]
    except (KeyError, ValueError, TypeError):
        raise ConfigError(f"checkpoint {path} is corrupt or truncated: delete it or use --overwrite to "
                          "start again") from None
    return State(islands, generation=meta["generation"], epoch=meta["epoch"], elapsed=meta["elapsed"],
                 logbook=make_logbook(meta["logbook"]), counterexamples=counterexamples)
