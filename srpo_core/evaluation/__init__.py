"""Cross-play: seat an agent with partners it never trained with and measure what happens.

The unit is a *seating*: one agent policy in one seat, pinned partner policies in every other
learning seat (seats the env config freezes, such as a Tag runner, keep their policy). Each
seating is played for ``episodes`` episodes (one batch, one episode per env) from seeds that
depend only on the evaluation ``seed``, so every seating meets the same env randomness
(common random numbers) and a result never depends on which worker computed it. Results are
stored under a hash of every input (policies and their checkpoint hashes, seat, game config,
episodes, seed, protocol version), so a rerun reuses them.

Two plans: ``--zoo`` (every agent x every zoo member x every seat, plus each agent with its
own partners for the training performance, TP) and ``--pool`` (every ordered pair of runs in
a population; the diagonal is TP, the rest cross-play performance, CP).

Modules: `seatings` (what is played), `plan` (which seatings), `play` (played or reused,
stored), `pool` (cross-play matrices, TP and CP), `leaderboard` (rankings against a zoo).
"""
