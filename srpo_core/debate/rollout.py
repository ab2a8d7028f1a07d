"""Play debates: two seats answer a batch of problems over several rounds.

Both seats answer every round; in round r > 1 each sees its own and its partner's answer
of round r - 1 (prompts.py). A turn keeps the tokens, so the trainer can score them again.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from srpo_core.debate.answers import is_correct
from srpo_core.debate.data import Problem
from srpo_core.debate.generation import Generation, generate
from srpo_core.debate.models import Debater, Roster
from srpo_core.debate.prompts import round_prompts


@dataclass
class Turn:
    seat: Debater
    gen: Generation
    correct: torch.Tensor
    """(B,) 1.0 where this turn's answer equals the reference."""


@dataclass
class Debate:
    problems: list[Problem]
    turns: list[tuple[Turn, Turn]]
    """turns[round] = (position 0's turn, position 1's turn)."""

    def correct(self) -> torch.Tensor:
        """(rounds, 2, B) correctness of every turn."""
        return torch.stack([torch.stack([a.correct, b.correct]) for a, b in self.turns])


def play_debate(
    roster: Roster,
    seats: tuple[Debater, Debater],
    problems: list[Problem],
    *,
    rounds: int,
    max_new_tokens: int,
    generator: torch.Generator | None = None,
    temperature: float = 1.0,
    greedy: bool = False,
) -> Debate:
    """One debate per problem between ``seats[0]`` and ``seats[1]``."""
    questions = [p.question for p in problems]
    previous: list[list[str]] | None = None
    turns = []
    for round_index in range(rounds):
        pair = []
        for position, seat in enumerate(seats):
            own = previous[position] if previous else None
            partner = previous[1 - position] if previous else None
            with roster.active(seat) as (model, tokenizer):
                prompts = round_prompts(tokenizer, questions, round_index, own, partner)
                gen = generate(
                    model,
                    tokenizer,
                    prompts,
                    max_new_tokens=max_new_tokens,
                    generator=generator,
                    temperature=temperature,
                    greedy=greedy,
                )
            correct = torch.tensor(
                [
                    float(is_correct(text, p.answer))
                    for text, p in zip(gen.texts, problems, strict=True)
                ]
            )
            pair.append(Turn(seat, gen, correct))
        turns.append((pair[0], pair[1]))
        previous = [pair[0].gen.texts, pair[1].gen.texts]
    return Debate(problems, turns)
