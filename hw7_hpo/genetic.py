"""A genetic algorithm over the search space with DEAP (``deap.base.Toolbox``, ``deap.tools``).

Encoding: one real gene in [0, 1] per hyperparameter, decoded by the space (log scale for the learning
rate and weight decay, bins for choices, 2 significant digits), so the operators never see types or bounds.

One generation: keep the ``elite`` best individuals unchanged (elitism), fill the rest by tournament
selection, then simulated binary crossover (``cxSimulatedBinaryBounded``) and polynomial mutation
(``mutPolynomialBounded``), both bounded to [0, 1], applied by ``deap.algorithms.varAnd``. Fitness is the
validation accuracy of the decoded config (0 if it diverged). Every evaluation goes through the
:class:`~hw7_hpo.runner.TrialRunner` cache keyed by the *decoded* config: an individual that decodes to a
config seen before (an elite, a clone, a child equal to its parent after rounding) costs no epochs.

DEAP draws from Python's global ``random``; it is seeded with ``seed`` and restored afterwards. Training
never touches it, so a rerun after a kill replays the same generations: every individual recorded before
the kill is a cache hit, and the run continues where it stopped.
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Sequence

from deap import algorithms, base, creator, tools

from .objective import Objective
from .records import MethodResult, TrialLog, TrialRecord
from .runner import TrialRunner
from .space import SEARCH_SPACE, Param, config_key, decode

if not hasattr(creator, "HPOFitness"):  # creator classes are process-global: create them once
    creator.create("HPOFitness", base.Fitness, weights=(1.0,))
    creator.create("HPOIndividual", list, fitness=creator.HPOFitness)


@dataclass(frozen=True)
class GAConfig:
    """GA settings. With the default budget (30 full trials) this is ~4 generations of 8."""

    population_size: int = 8
    elite: int = 2
    tournament_size: int = 3
    cx_prob: float = 0.7
    mut_prob: float = 0.4
    eta_crossover: float = 10.0  # SBX spread: smaller = children farther from parents
    eta_mutation: float = 10.0
    max_stalled_generations: int = 25  # generations without a new training before giving up

    def __post_init__(self):
        if not 0 <= self.elite < self.population_size:
            raise ValueError(f"elite must be in [0, population_size), got {self.elite}")


def make_toolbox(num_genes: int, cfg: GAConfig) -> base.Toolbox:
    """Genes in [0, 1]; SBX crossover, polynomial mutation, tournament selection."""
    toolbox = base.Toolbox()
    toolbox.register("gene", random.random)
    toolbox.register("individual", tools.initRepeat, creator.HPOIndividual, toolbox.gene, n=num_genes)
    toolbox.register("population", tools.initRepeat, list, toolbox.individual)
    toolbox.register("mate", tools.cxSimulatedBinaryBounded, eta=cfg.eta_crossover, low=0.0, up=1.0)
    toolbox.register("mutate", tools.mutPolynomialBounded, eta=cfg.eta_mutation, low=0.0, up=1.0,
                     indpb=1.0 / num_genes)
    toolbox.register("select", tools.selTournament, tournsize=cfg.tournament_size)
    return toolbox


def fitness(record: TrialRecord) -> float:
    return record.val_acc if record.status == "complete" and record.val_acc is not None else 0.0


def genetic_search(objective: Objective, budget_epochs: int, *, seed: int = 0, log: TrialLog | None = None,
                   space: Sequence[Param] = SEARCH_SPACE, cfg: GAConfig = GAConfig(),
                   progress: bool | None = None, method: str = "ga") -> MethodResult:
    """Evolve configs until ``budget_epochs`` training epochs are consumed."""
    runner = TrialRunner(method, objective, budget_epochs, log, progress)
    toolbox = make_toolbox(len(space), cfg)
    generations: list[dict] = []
    saved_state = random.getstate()
    random.seed(seed)
    try:
        seen: set[str] = set()  # configs this trajectory has scored (a resumed run's cached ones count)

        def evaluate(individuals) -> bool:
            """Assign fitness to ``individuals`` lacking one; False once the budget ran out."""
            trained_before, new_configs, ok = len(runner.trials), 0, True
            for ind in individuals:
                if not ind.fitness.valid:
                    config = decode(ind, space)
                    record = runner.evaluate(config)
                    if record is None:
                        ok = False
                        break
                    key = config_key(config)
                    new_configs += key not in seen
                    seen.add(key)
                    ind.fitness.values = (fitness(record),)
            scored = [ind.fitness.values[0] for ind in individuals if ind.fitness.valid]
            generations.append({"generation": len(generations), "new_configs": new_configs,
                                "trained": len(runner.trials) - trained_before,
                                "best": max(scored, default=float("nan")),
                                "mean": sum(scored) / len(scored) if scored else float("nan")})
            return ok

        population = toolbox.population(n=cfg.population_size)
        alive = evaluate(population)
        stalled = 0
        while alive and stalled < cfg.max_stalled_generations:
            elites = [toolbox.clone(ind) for ind in tools.selBest(population, cfg.elite)]
            parents = toolbox.select(population, cfg.population_size - cfg.elite)
            offspring = algorithms.varAnd(parents, toolbox, cfg.cx_prob, cfg.mut_prob)
            alive = evaluate(offspring)
            population = elites + offspring
            stalled = stalled + 1 if generations[-1]["new_configs"] == 0 else 0
    finally:
        random.setstate(saved_state)
    return runner.result(seed=seed, generations=generations, settings=asdict(cfg))
