"""Observations of batched kitchens (`srpo_core.envs.overcooked.kitchen`), equal to the
package's: `lossless` is ``mdp.lossless_state_encoding(state, horizon)`` and `featurized` is
``mdp.featurize_state(state, mlam)``, each agent's flattened as float32 (as the package
backend hands them out).

lossless: per cell (numbered ``x * height + y``, the package's [x][y] order flattened) 26
layers: the player's own and the other's position, their orientations (4 + 4), the terrain
(pot, counter, onion / tomato / dish dispenser, serving), ingredients in idle pots, in
cooking / finished soups (anywhere, held ones included), a cooking soup's remaining time,
finished soups, dishes, onions, tomatoes, and urgency (all ones in the last 40 steps).

featurized: per player 46 features (own first, then the other's), the other's position
relative to the player and the player's own (96 in all). The distances behind "closest"
are the motion planner's (``mlam.motion_planner.min_cost_to_feature`` from the player's
position and orientation), its first minimum in the package's list order. They depend on
nothing but the player's (position, orientation) for dispensers, serving spots and pots, so
`FeatureTables` asks the package's planner once per layout for every (position,
orientation). The package's lists also hold counters (onions, dishes and soups lying on
them, empty counters), but with its NO_COUNTERS_PARAMS planner (srpo's) no counter is a
valid motion goal, so they never win: closest soup and closest empty counter are always
(0, 0), the others are the dispensers' (checked when the tables are built).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from dataclasses import dataclass

import torch

from srpo_core.envs.overcooked.kitchen import (
    COUNTER,
    DIRECTIONS,
    DISH,
    DISH_DISPENSER,
    FREE,
    NOTHING,
    ONION,
    ONION_DISPENSER,
    POT,
    SERVING,
    SOUP,
    TOMATO,
    TOMATO_DISPENSER,
    Kitchen,
    KitchenLayout,
    kitchen_layout,
)
from srpo_core.envs.overcooked.layouts import layout_planner

LOSSLESS_LAYERS = 26
URGENCY_STEPS = 40
"""lossless's urgency layer is on while fewer than this many steps remain."""
TERRAIN_LAYERS = (POT, COUNTER, ONION_DISPENSER, TOMATO_DISPENSER, DISH_DISPENSER, SERVING)
"""The terrain behind lossless layers 10-15."""
FEATURED_OBJECTS = (ONION, SOUP, DISH, TOMATO)
"""featurize_state's one-hot order of a held object (its IDX_TO_OBJ)."""
NUM_POTS = 2
"""Pots featurize_state encodes per player (its default num_pots)."""


# -- lossless ----------------------------------------------------------------------------


def _object_layers(
    lay: KitchenLayout,
    kind: torch.Tensor,
    code: torch.Tensor,
    tick: torch.Tensor,
    in_pot: torch.Tensor,
) -> torch.Tensor:
    """[..., 9] lossless layers 16-24 of objects (kind, code, tick [...], as in `Kitchen`);
    ``in_pot`` [...] marks those lying in a pot."""
    soup = kind == SOUP
    onions, tomatoes = lay.soup_onions[code], lay.soup_tomatoes[code]
    idle_pot = soup & in_pot & (tick < 0)
    cooked_pot = soup & in_pot & (tick >= 0)
    elsewhere = soup & ~in_pot
    in_soup = cooked_pot | elsewhere
    ready = cooked_pot & (tick >= lay.soup_time[code])
    layers = (
        onions * idle_pot,
        tomatoes * idle_pot,
        onions * in_soup,
        tomatoes * in_soup,
        (lay.soup_time[code] - tick) * cooked_pot,
        ready | elsewhere,
        kind == DISH,
        kind == ONION,
        kind == TOMATO,
    )
    return torch.stack([layer.float() for layer in layers], -1)


def lossless(lay: KitchenLayout, k: Kitchen, horizon: int) -> list[torch.Tensor]:
    """Per agent [B, cells * 26] float32: the package's lossless_state_encoding, flattened."""
    batch, cells = k.kind.shape
    rows = torch.arange(batch, device=k.kind.device)
    base = torch.zeros((batch, cells, LOSSLESS_LAYERS), device=k.kind.device)
    for layer, terrain in enumerate(TERRAIN_LAYERS):
        base[:, :, 10 + layer] = (lay.terrain == terrain).float()
    in_pot = (lay.terrain == POT).expand(batch, cells)
    base[:, :, 16:25] = _object_layers(lay, k.kind, k.code, k.tick, in_pot)
    not_in_pot = torch.zeros((batch, 2), dtype=torch.bool, device=k.kind.device)
    held = _object_layers(lay, k.held, k.held_code, k.held_tick, not_in_pot)
    for p in (0, 1):  # players stand on free cells, where nothing else lies
        base[rows, k.pos[:, p], 16:25] = held[:, p]
    base[:, :, 25] = (horizon - k.timestep < URGENCY_STEPS).float().unsqueeze(1)
    out = []
    for me in (0, 1):
        obs = base.clone()
        for rank, p in enumerate((me, 1 - me)):
            obs[rows, k.pos[:, p], rank] = 1.0
            obs[rows, k.pos[:, p], 2 + 4 * rank + k.ori[:, p]] = 1.0
        out.append(obs.reshape(batch, cells * LOSSLESS_LAYERS))
    return out


# -- featurized --------------------------------------------------------------------------


@dataclass
class FeatureTables:
    """Per (cell, orientation) of a player, the cell featurize_state finds closest (-1: none)."""

    onion: torch.Tensor
    """[cells, 4] closest onion dispenser."""
    tomato: torch.Tensor
    """[cells, 4] closest tomato dispenser."""
    dish: torch.Tensor
    """[cells, 4] closest dish dispenser."""
    serving: torch.Tensor
    """[cells, 4] closest serving spot."""
    pots: torch.Tensor
    """[cells, 4, NUM_POTS] the closest pot, then the closest of the others."""
    wall: torch.Tensor
    """[cells, 4] float: the cell in each direction is not free (featurize's p_wall)."""
    xy: torch.Tensor
    """[cells, 2] a cell's (x, y)."""

    def to(self, device: torch.device | str) -> FeatureTables:
        return FeatureTables(
            **{f.name: getattr(self, f.name).to(device) for f in dataclasses.fields(self)}
        )


@functools.lru_cache(maxsize=16)
def feature_tables(layout: str) -> FeatureTables:
    """Layout ``layout``'s tables from the package's own planner (srpo's layout_planner; CPU)."""
    lay = kitchen_layout(layout)
    mdp, mlam = layout_planner(layout)
    planner = mlam.motion_planner
    for counter in mdp.get_counter_locations():
        if any(planner.is_valid_motion_goal(g) for g in planner.motion_goals_for_pos[counter]):
            raise NotImplementedError(
                f"layout '{lay.name}': its planner reaches counters, which featurized "
                "observations of the torch backend do not model"
            )

    def closest(start, locations: list) -> int:
        _, best = planner.min_cost_to_feature(start, locations, with_argmin=True)
        return -1 if best is None else lay.cell(best)

    shape = (lay.cells, len(DIRECTIONS))
    tables = {name: torch.full(shape, -1, dtype=torch.long) for name in ("onion", "tomato")}
    tables |= {name: torch.full(shape, -1, dtype=torch.long) for name in ("dish", "serving")}
    tables["pots"] = torch.full((*shape, NUM_POTS), -1, dtype=torch.long)
    sources = {
        "onion": mdp.get_onion_dispenser_locations(),
        "tomato": mdp.get_tomato_dispenser_locations(),
        "dish": mdp.get_dish_dispenser_locations(),
        "serving": mdp.get_serving_locations(),
    }
    for xy, (d, direction) in itertools.product(
        mdp.get_valid_player_positions(), enumerate(DIRECTIONS)
    ):
        start, cell = (xy, direction), lay.cell(xy)
        for name, locations in sources.items():
            tables[name][cell, d] = closest(start, locations)
        remaining = mdp.get_pot_locations()
        for j in range(NUM_POTS):
            pot = closest(start, remaining)
            tables["pots"][cell, d, j] = pot
            if pot >= 0:
                remaining.remove(lay.xy(pot))
    return FeatureTables(
        **tables,
        wall=(lay.terrain[lay.front] != FREE).float(),
        xy=torch.tensor([lay.xy(c) for c in range(lay.cells)], dtype=torch.long),
    )


def _deltas(tables: FeatureTables, target: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """[B, 2] (x, y) from ``pos`` to ``target`` cells [B]; (0, 0) where target is -1."""
    delta = tables.xy[target.clamp(min=0)] - tables.xy[pos]
    return delta * (target >= 0).unsqueeze(1)


def _pot_features(
    lay: KitchenLayout,
    tables: FeatureTables,
    k: Kitchen,
    pot: torch.Tensor,
    pos: torch.Tensor,
    env: torch.Tensor,
) -> list[torch.Tensor]:
    """featurize's 10 features of the pot at cells ``pot`` [N] (-1: none, all zeros) of
    games ``env`` [N], seen from cells ``pos`` [N]."""
    exists = pot >= 0
    cell = pot.clamp(min=0)
    kind, code, tick = k.kind[env, cell], k.code[env, cell], k.tick[env, cell]
    soup = exists & (kind == SOUP)
    idle = tick < 0
    time = lay.soup_time[code]
    full = soup & (~idle | (lay.soup_length[code] == lay.max_ingredients))
    cooking = soup & ~idle & (tick < time)
    ready = soup & ~idle & (tick >= time)
    remaining = torch.where(soup & ~idle, (time - tick).clamp(min=0), 0)
    columns = (
        exists,
        exists & (kind == NOTHING),
        full,
        cooking,
        ready,
        lay.soup_onions[code] * soup,
        lay.soup_tomatoes[code] * soup,
        remaining,
    )
    return [c.unsqueeze(1) for c in columns] + [_deltas(tables, pot, pos)]


def _player_features(lay: KitchenLayout, tables: FeatureTables, k: Kitchen) -> torch.Tensor:
    """[B, 2, 46] featurize's features of each player (own part, before the positions),
    both players' rows computed together (B * 2 rows, game-major)."""
    games = k.pos.shape[0]
    pos, ori, held = k.pos.reshape(-1), k.ori.reshape(-1), k.held.reshape(-1)
    env = torch.arange(games, device=pos.device).repeat_interleave(2)
    eye = torch.eye(4, device=pos.device)
    objs = torch.stack([(held == o).float() for o in FEATURED_OBJECTS], 1)
    zeros = torch.zeros((len(pos), 2), dtype=torch.long, device=pos.device)
    parts = [eye[ori], objs]
    for name, kind in (("onion", ONION), ("tomato", TOMATO), ("dish", DISH)):
        target = getattr(tables, name)[pos, ori]
        parts.append(_deltas(tables, target, pos) * (held != kind).unsqueeze(1))
    code = k.held_code.reshape(-1)  # 0 (no ingredients) unless a soup is held
    parts += [zeros, lay.soup_onions[code].unsqueeze(1), lay.soup_tomatoes[code].unsqueeze(1)]
    parts += [_deltas(tables, tables.serving[pos, ori], pos), zeros]
    for j in range(NUM_POTS):
        parts += _pot_features(lay, tables, k, tables.pots[pos, ori, j], pos, env)
    parts.append(tables.wall[pos])
    return torch.cat([part.float() for part in parts], 1).reshape(games, 2, -1)


def featurized(lay: KitchenLayout, tables: FeatureTables, k: Kitchen) -> list[torch.Tensor]:
    """Per agent [B, 96] float32: the package's featurize_state (own features first)."""
    features = _player_features(lay, tables, k)
    own = [features[:, 0], features[:, 1]]
    xy = [tables.xy[k.pos[:, p]] for p in (0, 1)]
    return [
        torch.cat([own[me], own[1 - me], (xy[1 - me] - xy[me]).float(), xy[me].float()], 1)
        for me in (0, 1)
    ]
