"""The iterative update rules of the four papers as pure, batched functions.

Each rule is a function of (the problem, its hyperparameters theta, the initial point): the
classical agents of :mod:`agents.classical` pass constant theta, the learned agents
(:mod:`agents.kd_edn`, :mod:`agents.unfolded_pga`, :mod:`agents.upga_m`) pass learned tensors
through the same functions.

* :mod:`~agents.rules.problem`: the solver view of the paper-000 envs and their adapters.
* :mod:`~agents.rules.gradient`: gradient ascent, paper 000 eq. (9).
* :mod:`~agents.rules.wmmse`: WMMSE (Shi et al. 2011, paper 000 ref. [4]).
* :mod:`~agents.rules.pga`: PGA of paper 003 (Algorithm 1, eq. (6)-(13)).
* :mod:`~agents.rules.pga_momentum`: PGA+M, line search and MO of paper 004.
* :mod:`~agents.rules.greedy`: greedy codebook selection of paper 002 (ref. [35] Alg. 2).
"""

from agents.rules import gradient, greedy, pga, pga_momentum, problem, wmmse

__all__ = ["gradient", "greedy", "pga", "pga_momentum", "problem", "wmmse"]
