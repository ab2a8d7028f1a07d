"""Where each feature sits in the Hanabi Learning Environment's canonical observation.

HLE encodes a player's view (observation type 1, card knowledge) as one bit vector of five
sections: the other players' hands (one-hot card per slot, then one "hand is short" bit per
player), the board (deck-size, information- and life-token thermometers, one-hot firework
levels), the discard pile (a thermometer per card kind), the last non-deal move, and the
common card knowledge (for every player's slots, which cards are still plausible and which
colour/rank was hinted). Players are counted from the observer: offset 0 is the observer.

Decoding it here (batched, in torch) gives the legal-move mask without one C++ call per
move and lets scripted policies, which see only the observation, reason about the game.
Move uids follow HLE: discard slot i, play slot i, reveal colour c to offset o, reveal
rank r to offset o, in that order.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class HanabiLayout:
    players: int
    colors: int
    ranks: int
    hand_size: int
    max_information_tokens: int
    max_life_tokens: int
    copies: tuple[int, ...]
    """Copies of each rank per colour in the deck (HLE: 3 of the lowest, 1 of the highest)."""

    @classmethod
    def from_game(cls, game) -> HanabiLayout:
        """The layout of a ``pyhanabi.HanabiGame``."""
        return cls(
            players=game.num_players(),
            colors=game.num_colors(),
            ranks=game.num_ranks(),
            hand_size=game.hand_size(),
            max_information_tokens=game.max_information_tokens(),
            max_life_tokens=game.max_life_tokens(),
            copies=tuple(game.num_cards(0, r) for r in range(game.num_ranks())),
        )

    # -- sizes ----------------------------------------------------------------------------
    @property
    def card_bits(self) -> int:
        return self.colors * self.ranks

    @property
    def deck_size(self) -> int:
        return self.colors * sum(self.copies)

    @property
    def num_moves(self) -> int:
        return 2 * self.hand_size + (self.players - 1) * (self.colors + self.ranks)

    @property
    def hands(self) -> int:
        return 0

    @property
    def board(self) -> int:
        return self.hands + (self.players - 1) * self.hand_size * self.card_bits + self.players

    @property
    def fireworks_at(self) -> int:
        return self.board + self.deck_size - self.players * self.hand_size

    @property
    def info_at(self) -> int:
        return self.fireworks_at + self.card_bits

    @property
    def life_at(self) -> int:
        return self.info_at + self.max_information_tokens

    @property
    def discards(self) -> int:
        return self.life_at + self.max_life_tokens

    @property
    def last_action(self) -> int:
        return self.discards + self.deck_size

    @property
    def knowledge(self) -> int:
        p, h = self.players, self.hand_size
        return self.last_action + 2 * p + 4 + self.colors + self.ranks + 2 * h + self.card_bits + 2

    @property
    def size(self) -> int:
        slot = self.card_bits + self.colors + self.ranks
        return self.knowledge + self.players * self.hand_size * slot

    # -- move uids ------------------------------------------------------------------------
    def discard(self, slot: int) -> int:
        return slot

    def play(self, slot: int) -> int:
        return self.hand_size + slot

    def reveal_color(self, offset: int, color: int) -> int:
        return 2 * self.hand_size + (offset - 1) * self.colors + color

    def reveal_rank(self, offset: int, rank: int) -> int:
        return (
            2 * self.hand_size + (self.players - 1) * self.colors + (offset - 1) * self.ranks + rank
        )

    # -- decoders (obs: [N, size], any dtype with 0/1 entries) ------------------------------
    def partner_cards(self, obs: torch.Tensor) -> torch.Tensor:
        """[N, players - 1, hand_size, colors, ranks] bool: the cards of offsets 1.. (one-hot,
        all zero for an empty slot)."""
        n = (self.players - 1) * self.hand_size * self.card_bits
        shape = (-1, self.players - 1, self.hand_size, self.colors, self.ranks)
        return obs[:, self.hands : self.hands + n].reshape(shape) > 0

    def fireworks(self, obs: torch.Tensor) -> torch.Tensor:
        """[N, colors] long: cards played per colour."""
        levels = obs[:, self.fireworks_at : self.info_at].reshape(-1, self.colors, self.ranks)
        ranks = torch.arange(1, self.ranks + 1, device=obs.device)
        return ((levels > 0) * ranks).sum(-1)

    def information_tokens(self, obs: torch.Tensor) -> torch.Tensor:
        return (obs[:, self.info_at : self.life_at] > 0).sum(-1)

    def life_tokens(self, obs: torch.Tensor) -> torch.Tensor:
        return (obs[:, self.life_at : self.discards] > 0).sum(-1)

    def plausible(self, obs: torch.Tensor) -> torch.Tensor:
        """[N, players, hand_size, colors, ranks] bool: the cards each slot may still hold
        given the hints (offset 0 is the observer's own hand; empty slots are all False)."""
        slot = self.card_bits + self.colors + self.ranks
        block = obs[:, self.knowledge : self.size].reshape(-1, self.players, self.hand_size, slot)
        shape = (-1, self.players, self.hand_size, self.colors, self.ranks)
        return block[..., : self.card_bits].reshape(shape) > 0

    def hinted(self, obs: torch.Tensor) -> torch.Tensor:
        """[N, players, hand_size] bool: the slot's colour or rank was revealed by a hint."""
        slot = self.card_bits + self.colors + self.ranks
        block = obs[:, self.knowledge : self.size].reshape(-1, self.players, self.hand_size, slot)
        return (block[..., self.card_bits :] > 0).any(-1)

    def legal_moves(self, obs: torch.Tensor) -> torch.Tensor:
        """[N, num_moves] bool: HLE's legal moves for an observer whose turn it is: play any
        held card; discard one while information tokens are below the maximum; reveal a
        colour or rank that at least one card in the target's hand has, while tokens last."""
        own = self.plausible(obs)[:, 0].flatten(2).any(-1)  # [N, hand_size] slot holds a card
        info = self.information_tokens(obs)
        cards = self.partner_cards(obs)  # [N, P-1, H, C, R]
        hints = (info > 0).unsqueeze(-1)
        colors = cards.any(-1).any(-2) & hints.unsqueeze(-1)  # [N, P-1, C]
        ranks = cards.any(-2).any(-2) & hints.unsqueeze(-1)  # [N, P-1, R]
        discards = own & (info < self.max_information_tokens).unsqueeze(-1)
        return torch.cat([discards, own, colors.flatten(1), ranks.flatten(1)], -1)
