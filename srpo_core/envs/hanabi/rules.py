"""A rule-based Hanabi partner that reads only its canonical observation.

It decodes the observation (`HanabiLayout`: its own cards' hint knowledge, the partners'
cards and what they know, fireworks, tokens) and, on its turn, takes the first rule that
applies:

1. play a card it knows is playable (every card its hints leave possible is playable);
2. with an information token, hint a playable card to the nearest partner who does not
   know it is playable: its rank if the partner does not know the rank yet, else its colour;
3. discard (when discarding is legal): a card it knows is useless (every possibility
   already played), else its oldest card without hints, else its oldest card;
4. otherwise (all tokens in hand, nothing worth hinting) any legal hint, else any legal move.

Deterministic: the distribution puts all its mass on the chosen move.
"""

from __future__ import annotations

from typing import Any

import torch

from srpo_core.distributions import Categorical
from srpo_core.envs.family import Scripted
from srpo_core.envs.hanabi.layout import HanabiLayout

UNCHOSEN = -1e9
"""Logit of every move but the chosen one (mass ~0, finite so masks still apply)."""


class HanabiRules:
    def __init__(self, layout: HanabiLayout) -> None:
        self.layout = layout

    def distribution(self, obs: torch.Tensor, mask: torch.Tensor | None = None) -> Categorical:
        lead, moves = obs.shape[:-1], self.layout.num_moves
        flat = obs.reshape(-1, obs.shape[-1])
        legal = self.layout.legal_moves(flat) if mask is None else mask.reshape(-1, moves)
        choice = self.choose(flat, legal)
        logits = torch.full((flat.shape[0], moves), UNCHOSEN, device=obs.device)
        logits[torch.arange(flat.shape[0], device=obs.device), choice] = 0.0
        return Categorical(logits.reshape(*lead, moves), mask)

    def choose(self, obs: torch.Tensor, legal: torch.Tensor) -> torch.Tensor:
        """[N] move uid per observation, by the rules above."""
        lay = self.layout
        n, device = obs.shape[0], obs.device
        fireworks = lay.fireworks(obs)  # [N, C]
        ranks = torch.arange(lay.ranks, device=device)
        playable = ranks == fireworks.unsqueeze(-1)  # [N, C, R]
        useless = ranks < fireworks.unsqueeze(-1)
        plausible = lay.plausible(obs)  # [N, P, H, C, R]
        held = plausible.flatten(3).any(-1)  # [N, P, H]
        sure_playable = held & ~(plausible & ~playable[:, None, None]).flatten(3).any(-1)
        sure_useless = held & ~(plausible & ~useless[:, None, None]).flatten(3).any(-1)

        # 1. play a card known to be playable
        can_play, play_slot = first(sure_playable[:, 0])
        play_uid = lay.play(0) + play_slot

        # 2. hint a playable card to the nearest partner who does not know it
        cards = lay.partner_cards(obs)  # [N, P-1, H, C, R]
        worth = (cards & playable[:, None, None]).flatten(3).any(-1) & ~sure_playable[:, 1:]
        can_hint, target = first(worth.flatten(1))
        partner, slot = target // lay.hand_size, target % lay.hand_size  # partner: offset - 1
        rows = torch.arange(n, device=device)
        card = cards[rows, partner, slot]  # [N, C, R]
        color, rank = card.any(-1).float().argmax(-1), card.any(-2).float().argmax(-1)
        knows_rank = plausible[:, 1:].any(-2).sum(-1)[rows, partner, slot] == 1
        hint_uid = torch.where(
            knows_rank,
            lay.reveal_color(1, 0) + partner * lay.colors + color,
            lay.reveal_rank(1, 0) + partner * lay.ranks + rank,
        )

        # 3. discard a known-useless card, else the oldest unhinted card, else the oldest
        has_useless, useless_slot = first(sure_useless[:, 0])
        has_unhinted, unhinted_slot = first(held[:, 0] & ~lay.hinted(obs)[:, 0])
        discard_slot = torch.where(has_unhinted, unhinted_slot, 0)
        discard_slot = torch.where(has_useless, useless_slot, discard_slot)
        discard_uid = lay.discard(0) + discard_slot

        # 4. any legal hint, else any legal move
        has_legal_hint, legal_hint = first(legal[:, 2 * lay.hand_size :])
        fallback = torch.where(has_legal_hint, 2 * lay.hand_size + legal_hint, first(legal)[1])

        def ok(uid: torch.Tensor) -> torch.Tensor:
            return legal[rows, uid]

        choice = fallback
        choice = torch.where(ok(discard_uid), discard_uid, choice)
        choice = torch.where(can_hint & ok(hint_uid), hint_uid, choice)
        choice = torch.where(can_play & ok(play_uid), play_uid, choice)
        return choice


def first(flags: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row of [N, K] flags: whether any is set, and the index of the first set one."""
    return flags.any(-1), flags.float().argmax(-1)


def _rules(env_config: Any) -> HanabiRules:
    return HanabiRules(env_config.layout())


SCRIPTED: dict[str, Scripted] = {"rules": Scripted("hanabi", "agent", _rules, {})}
