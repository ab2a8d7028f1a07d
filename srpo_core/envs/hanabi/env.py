"""Hanabi (Hanabi Learning Environment 0.0.4) as a batched, turn-based env.

A lean loop on HLE's C++ bindings (``pyhanabi``'s cffi library): per step only the acting
player's move is applied, the chance deals follow, and every player's canonical observation
is encoded (``rl_env``'s ``vectorized``). No per-step dicts are built, the encodings of all
games and players are parsed by one numpy call, and the legal-move masks are decoded from
the acting players' observations in one batched op (`HanabiLayout.legal_moves`; tested
equal to HLE's own legal moves).

- Agents ``agent0..agentN-1``; each sees its own canonical observation at every step.
- Actions: HLE's move uids (discard slot i, play slot i, reveal colour / rank to the
  player at offset o). Only the current player acts (``Step.acting``); its legal moves are
  ``Step.legal`` (other players' masks are all False and their actions are ignored).
- Reward: shared by every player at every step. ``score_delta`` (default, ``rl_env``'s) is
  the change of HLE's score, which drops to 0 when the last life is lost, so the step
  rewards of an episode sum to its official score; ``fireworks`` gives +1 per successful
  play and nothing for losing, so its sum can be positive while the score is 0.
- Info per episode: ``score`` (official: 0 when the lives run out), ``step_reward_sum``,
  ``fireworks`` (cards played, whatever the lives), ``out_of_lives``.
- Every episode deals from a fresh HLE game seeded from the env's generator (`randint`, so
  the members of a population each draw their own games), so a game is (seed, moves so
  far): that is what `state_dict` stores, per env, and replays on resume.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from srpo_core.envs.base import BatchedEnv, Discrete, EnvSpec, Step
from srpo_core.envs.family import EnvConfig
from srpo_core.envs.hanabi.layout import HanabiLayout
from srpo_core.errors import UserError

REWARDS = ("score_delta", "fireworks")
INFO_KEYS = ("score", "step_reward_sum", "fireworks", "out_of_lives")
CHANCE = -1
SEED_RANGE = 2**31 - 1


@dataclass
class HanabiEnvConfig(EnvConfig):
    name: str = "hanabi"
    players: int = 4
    colors: int = 3
    ranks: int = 3
    hand_size: int = 0
    """Cards per hand; 0 takes HLE's default (5 for 2-3 players, 4 for 4-5)."""
    max_information_tokens: int = 8
    max_life_tokens: int = 3
    random_start_player: bool = False
    """False: player 0 starts every game (HLE's default)."""
    reward: str = "score_delta"
    """score_delta (rl_env's step reward) or fireworks (+1 per successful play)."""

    def game_params(self, seed: int) -> dict[str, Any]:
        """HLE's game parameters (observation type 1: with card knowledge)."""
        params = {
            "players": self.players,
            "colors": self.colors,
            "ranks": self.ranks,
            "max_information_tokens": self.max_information_tokens,
            "max_life_tokens": self.max_life_tokens,
            "random_start_player": self.random_start_player,
            "observation_type": 1,
            "seed": seed,
        }
        if self.hand_size:
            params["hand_size"] = self.hand_size
        return params

    def layout(self) -> HanabiLayout:
        """Where each feature sits in this game's observations (builds one HLE game)."""
        return HanabiLayout.from_game(_pyhanabi().HanabiGame(self.game_params(0)))

    def validate(self) -> None:
        for key, low, high in [("players", 2, 5), ("colors", 1, 5), ("ranks", 1, 5)]:
            value = getattr(self, key)
            if not low <= value <= high:
                raise UserError(f"env.{key} must be in [{low}, {high}], got {value}")
        if self.hand_size < 0:
            raise UserError(f"env.hand_size must be >= 1 (0: HLE's default), got {self.hand_size}")
        if self.max_information_tokens < 1 or self.max_life_tokens < 1:
            raise UserError("env.max_information_tokens and env.max_life_tokens must be >= 1")
        if self.reward not in REWARDS:
            raise UserError(f"env.reward must be one of {', '.join(REWARDS)}, got '{self.reward}'")
        hand = self.hand_size or (5 if self.players < 4 else 4)
        deck = self.colors * (3 + 2 * max(self.ranks - 2, 0) + (self.ranks > 1))
        if self.players * hand > deck:
            raise UserError(
                f"a deck of {deck} cards cannot deal {self.players} hands of {hand} cards"
            )


def _pyhanabi():
    from hanabi_learning_environment import pyhanabi

    return pyhanabi


def spec(config: HanabiEnvConfig) -> EnvSpec:
    _, layout, moves = _game_of(tuple(config.game_params(0).items()))
    return _spec(layout, moves)


@functools.cache
def _game_of(params: tuple[tuple[str, Any], ...]) -> tuple[Any, HanabiLayout, tuple[Any, ...]]:
    """A pyhanabi game of these parameters, its layout and moves, kept for the process (the
    spec and every env of these parameters share them): pyhanabi's objects free their C side
    in ``__del__``, which deadlocks when the garbage collector runs it inside cffi's lazy
    lookup of a library function (as a throwaway game once did, mid-``reset``)."""
    template = _pyhanabi().HanabiGame(dict(params))
    layout = HanabiLayout.from_game(template)
    return template, layout, tuple(template.get_move(uid) for uid in range(layout.num_moves))


def _spec(layout: HanabiLayout, moves: Sequence[Any]) -> EnvSpec:
    labels = tuple(str(move).strip("()").lower() for move in moves)
    players = layout.players
    agents = tuple(f"agent{i}" for i in range(players))
    moves_space = Discrete(layout.num_moves, labels)
    return EnvSpec(agents, (layout.size,) * players, (moves_space,) * players)


class HanabiEnv(BatchedEnv):
    """``num_envs`` independent Hanabi games stepped by a Python loop over HLE's C library."""

    member_seeded = True
    per_env_state = ("seeds", "moves")

    def __init__(
        self, config: HanabiEnvConfig, num_envs: int, device: torch.device | str, seed: int
    ) -> None:
        super().__init__(num_envs, torch.device(device), seed)
        self.config = config
        pyhanabi = _pyhanabi()
        self.lib, self.ffi = pyhanabi.lib, pyhanabi.ffi
        self.template, self.layout, moves = _game_of(tuple(config.game_params(0).items()))
        self.encoder = pyhanabi.ObservationEncoder(self.template)
        self._moves = list(moves)
        game = _spec(self.layout, self._moves)
        self.agents, self.obs_dims = game.agents, game.obs_dims
        self.action_spaces = game.action_spaces
        self._c_moves = [move.c_move for move in self._moves]
        self._text_len = 2 * self.layout.size - 1  # "0,1,...": one digit and a comma per bit
        self._observation = self.ffi.new("pyhanabi_observation_t*")
        self._games: list[Any] = [None] * num_envs  # pyhanabi.HanabiGame, kept alive
        self._states: list[Any] = [None] * num_envs  # pyhanabi_state_t*
        self._seeds = [0] * num_envs
        self._history: list[list[int]] = [[] for _ in range(num_envs)]
        self._current = np.zeros(num_envs, dtype=np.int64)
        self._legal = np.zeros((num_envs, self.layout.num_moves), dtype=bool)
        self._obs: list[torch.Tensor] = []
        self._masks: tuple[list[torch.Tensor], torch.Tensor] | None = None

    # -- one game -------------------------------------------------------------------------
    def _new_game(self, b: int, seed: int, moves: list[int] = ()) -> None:
        """Game ``b`` dealt from ``seed``, then ``moves`` replayed (a resume)."""
        if self._states[b] is not None:
            self.lib.DeleteState(self._states[b])
        game = _pyhanabi().HanabiGame(self.config.game_params(seed))
        state = self.ffi.new("pyhanabi_state_t*")
        self.lib.NewState(game.c_game, state)
        self._games[b], self._states[b], self._seeds[b] = game, state, seed
        self._history[b] = []
        self._deal(state)
        for uid in moves:
            self._apply(b, uid)

    def _deal(self, state) -> None:
        while self.lib.StateCurPlayer(state) == CHANCE:
            self.lib.StateDealRandomCard(state)

    def _apply(self, b: int, uid: int) -> None:
        state = self._states[b]
        self.lib.StateApplyMove(state, self._c_moves[uid])
        self._deal(state)
        self._history[b].append(uid)

    def _fireworks(self, state) -> int:
        return sum(self.lib.StateFireworks(state, c) for c in range(self.layout.colors))

    # -- observations ---------------------------------------------------------------------
    def _observe(self) -> list[torch.Tensor]:
        """Every player's canonical observation in every game, the current players and
        their legal moves."""
        lib, ffi, observation = self.lib, self.ffi, self._observation
        texts = []
        for b, state in enumerate(self._states):
            self._current[b] = lib.StateCurPlayer(state)
            for player in range(self.layout.players):
                lib.NewObservation(state, player, observation)
                text = lib.EncodeObservation(self.encoder._encoder, observation)
                texts.append(ffi.buffer(text, self._text_len)[:])
                lib.DeleteString(text)
                lib.DeleteObservation(observation)
        bits = np.frombuffer(b"".join(texts), dtype=np.uint8).reshape(-1, self._text_len)
        bits = (bits[:, ::2] == ord("1")).reshape(self.num_envs, self.layout.players, -1)
        rows = np.arange(self.num_envs)
        current_obs = torch.from_numpy(bits[rows, self._current])
        self._legal = self.layout.legal_moves(current_obs).numpy()
        obs = torch.from_numpy(bits.transpose(1, 0, 2).astype(np.float32)).to(self.device)
        self._obs = list(obs.unbind(0))
        acting = np.zeros((self.layout.players, self.num_envs), dtype=bool)
        acting[self._current, rows] = True
        legal = np.zeros((self.layout.players, *self._legal.shape), dtype=bool)
        legal[self._current, rows] = self._legal
        self._masks = (
            list(torch.from_numpy(legal).to(self.device).unbind(0)),
            torch.from_numpy(acting).to(self.device),
        )
        return self._obs

    # -- BatchedEnv -----------------------------------------------------------------------
    def reset(self) -> list[torch.Tensor]:
        for b, seed in enumerate(self.randint(SEED_RANGE, range(self.num_envs)).tolist()):
            self._new_game(b, seed)
        return self._observe()

    def masks(self) -> tuple[list[torch.Tensor] | None, torch.Tensor | None]:
        return self._masks if self._masks is not None else (None, None)

    def step(self, actions: list[torch.Tensor]) -> Step:
        lib = self.lib
        chosen = torch.stack([a.reshape(-1) for a in actions]).cpu().numpy()  # [A, B]
        uids = chosen[self._current, np.arange(self.num_envs)]
        if not self._legal[np.arange(self.num_envs), uids].all():
            bad = int(np.flatnonzero(~self._legal[np.arange(self.num_envs), uids])[0])
            raise ValueError(f"illegal Hanabi move {int(uids[bad])} in game {bad}")
        reward = np.zeros(self.num_envs, dtype=np.float32)
        info = np.zeros((len(INFO_KEYS), self.num_envs), dtype=np.float32)
        done = np.zeros(self.num_envs, dtype=bool)
        by_fireworks = self.config.reward == "fireworks"
        for b, state in enumerate(self._states):
            before = self._fireworks(state) if by_fireworks else lib.StateScore(state)
            self._apply(b, int(uids[b]))
            after = self._fireworks(state) if by_fireworks else lib.StateScore(state)
            reward[b] = after - before
            if lib.StateEndOfGameStatus(state) != 0:
                done[b] = True
                info[0, b] = lib.StateScore(state)
                info[2, b] = self._fireworks(state)
                info[3, b] = lib.StateLifeTokens(state) <= 0
        info[1] = reward
        ended = np.flatnonzero(done)
        if len(ended):
            for b, seed in zip(ended, self.randint(SEED_RANGE, ended).tolist(), strict=True):
                self._new_game(int(b), seed)
        obs = self._observe()
        shared = torch.from_numpy(reward).to(self.device)
        legal, acting = self._masks
        return Step(
            obs=obs,
            reward=shared.expand(self.num_agents, -1).clone(),
            cost=torch.zeros(self.num_agents, self.num_envs, device=self.device),
            done=torch.from_numpy(done).to(self.device),
            info={k: torch.from_numpy(info[j]).to(self.device) for j, k in enumerate(INFO_KEYS)},
            legal=legal,
            acting=acting,
        )

    def state_dict(self) -> dict[str, Any]:
        return super().state_dict() | {
            "seeds": list(self._seeds),
            "moves": [list(h) for h in self._history],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        for b, (seed, moves) in enumerate(zip(state["seeds"], state["moves"], strict=True)):
            self._new_game(b, int(seed), [int(m) for m in moves])
        self._observe()

    def __del__(self) -> None:
        for state in getattr(self, "_states", ()):
            if state is not None:
                self.lib.DeleteState(state)
