"""overcooked-ai 1.1.0's kitchen as batched torch tensors: the rules of
``OvercookedGridworld.get_state_transition`` for B games at once, on CPU or CUDA.

`KitchenLayout` holds a layout's static tables, built once from the package's own mdp: the
terrain, moves, recipes (a soup's value and cook time as the package computes them) and
start states. `Kitchen` holds the games: players, held objects, objects on counters and in
pots, timesteps. `step` applies one joint action to every game with tensor operations only
(a loop over the two players, none over games):

1. ``cook_full_pots_only`` (srpo's rule, `srpo_core.envs.overcooked.env`): an empty-handed
   interact with a pot holding a soup that is neither full, cooking nor ready becomes STAY,
   judged on the state before the step (as the package backend does).
2. Interacts, player 0 then player 1 on the same state (the second sees the first's
   result), with the package's branches: counters (drop / pick up), onion, tomato and dish
   dispensers, pots (add an ingredient, start cooking, pick up a ready soup with a dish),
   serving (deliver a soup for its recipe's value). The shaped rewards (the mdp's
   ``reward_shaping_params``: potting, *useful* dish pickup from a dispenser, soup pickup)
   and the events the srpo wrapper counts: ``potting_onion``, ``dish_pickup`` (every dish
   taken, from a dispenser or a counter, useful or not) and ``soup_delivery`` (every soup
   served, worth something or not). A dish pickup is useful when no counter holds a dish and
   fewer players hold a dish than pots are non-empty (cooking, ready or partially filled),
   the pots as they were before player 0's interact.
3. Moves: each player's target cell (blocked by terrain: stays, turns); when both would
   share a cell or swap, both stay (both turn). A player whose move was undone that way
   is *bumped* (the wrapper's bump counter).
4. Every soup that is cooking (placed anywhere) ticks once; the timestep grows by one.

Cells are numbered ``x * height + y`` (x to the right, y down), the order of the package's
lossless encoding once flattened. A soup's ingredients are one integer, their sequence in
base 3 (digit k = the k-th ingredient added: 1 onion, 2 tomato, 0 none), so the package's
ingredient order survives; per-code tables give its counts, value and cook time. Objects
also carry a stamp, ``2 * timestep + player`` when placed (negative for objects loaded
from a state), which orders them as the package's ``state.objects`` dict does (insertion
order shows in ``to_dict`` and in the scripted agents' tie-breaks).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from dataclasses import dataclass
from typing import Any

import torch

from srpo_core.envs.overcooked.compat import import_overcooked

TERRAIN = " XPOTDS"
"""Terrain codes: the index of the layout character (free, counter, pot, onion / tomato /
dish dispenser, serving)."""
FREE, COUNTER, POT, ONION_DISPENSER, TOMATO_DISPENSER, DISH_DISPENSER, SERVING = range(7)
NOTHING, ONION, TOMATO, DISH, SOUP = range(5)
"""Object kinds (a cell's or a player's); ONION and TOMATO are also the soup digits."""
OBJECT_NAMES = ("", "onion", "tomato", "dish", "soup")
DIRECTIONS = ((0, -1), (0, 1), (1, 0), (-1, 0))
"""The package's Direction.INDEX_TO_DIRECTION (north, south, east, west): actions 0-3."""
STAY, INTERACT = 4, 5
EVENT_COLUMNS = ("bumps", "onions_potted", "dishes_picked_up", "soups_delivered")
"""The columns of `step`'s per-player counters."""


@dataclass
class Kitchen:
    """B games' states, every tensor on one device, ``long`` unless said."""

    pos: torch.Tensor
    """[B, 2] each player's cell."""
    ori: torch.Tensor
    """[B, 2] each player's orientation (index into DIRECTIONS)."""
    held: torch.Tensor
    """[B, 2] the kind of object each player holds (NOTHING, ONION, TOMATO, DISH, SOUP)."""
    held_code: torch.Tensor
    """[B, 2] a held soup's ingredient code (0 for anything else)."""
    held_tick: torch.Tensor
    """[B, 2] a held soup's cooking tick (-1 for anything else)."""
    kind: torch.Tensor
    """[B, cells] the kind of object on each cell (counters and pots only)."""
    code: torch.Tensor
    """[B, cells] a soup's ingredient code (0 for anything else)."""
    tick: torch.Tensor
    """[B, cells] a soup's cooking tick: -1 before cooking starts (and for non-soups)."""
    stamp: torch.Tensor
    """[B, cells] when the object was placed (orders them like the package's dict)."""
    timestep: torch.Tensor
    """[B] steps since the episode started (the package's state.timestep)."""

    def rows(self, index: torch.Tensor) -> Kitchen:
        """The games ``index`` (a new Kitchen)."""
        return Kitchen(**{f.name: getattr(self, f.name)[index] for f in dataclasses.fields(self)})

    def put(self, index: torch.Tensor, other: Kitchen) -> None:
        """Overwrite games ``index`` with ``other``'s games (one per index, or one for all)."""
        for f in dataclasses.fields(self):
            getattr(self, f.name)[index] = getattr(other, f.name)

    def to(self, device: torch.device) -> Kitchen:
        return Kitchen(
            **{f.name: getattr(self, f.name).to(device) for f in dataclasses.fields(self)}
        )


@dataclass
class KitchenLayout:
    """A layout's static tables (tensors on one device)."""

    name: str
    width: int
    height: int
    terrain: torch.Tensor
    """[cells] terrain code."""
    move: torch.Tensor
    """[cells, 4] the cell a player reaches moving in each direction (its own if blocked)."""
    front: torch.Tensor
    """[cells, 4] the cell a player faces in each orientation (its own off the grid)."""
    pots: torch.Tensor
    """[pots] pot cells, in the package's order (get_pot_locations)."""
    dispensed: torch.Tensor
    """[terrain codes] the kind a dispenser hands out (NOTHING for other terrain)."""
    max_ingredients: int
    """A full soup's ingredients (the package's Recipe.MAX_NUM_INGREDIENTS)."""
    soup_length: torch.Tensor
    """[codes] ingredients in a soup."""
    soup_onions: torch.Tensor
    """[codes] onions in a soup."""
    soup_tomatoes: torch.Tensor
    """[codes] tomatoes in a soup."""
    soup_time: torch.Tensor
    """[codes] the recipe's cook time."""
    soup_value: torch.Tensor
    """[codes] float32: the sparse reward for delivering the soup (0 for soups nobody
    ordered; infinite for a bonus order when the layout's order_bonus is, as in tutorial_3)."""
    soup_append: torch.Tensor
    """[codes, 3] the code after adding an ONION or TOMATO (index 1 or 2)."""
    potting_reward: int
    dish_reward: int
    soup_reward: int
    """The mdp's reward_shaping_params: PLACEMENT_IN_POT_REW, DISH_PICKUP_REWARD,
    SOUP_PICKUP_REWARD."""
    joint_starts: torch.Tensor
    """[pairs, 2] the package's get_valid_joint_player_positions as cells (random starts)."""
    start: Kitchen
    """One game: the layout's standard start state."""
    bonus_orders: list[dict]
    all_orders: list[dict]
    """The orders of the layout's start states (as the package's to_dict writes them)."""

    @property
    def cells(self) -> int:
        return self.width * self.height

    def cell(self, xy: tuple[int, int]) -> int:
        return xy[0] * self.height + xy[1]

    def xy(self, cell: int) -> tuple[int, int]:
        return cell // self.height, cell % self.height

    def to(self, device: torch.device | str) -> KitchenLayout:
        device = torch.device(device)
        moved = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            moved[f.name] = value.to(device) if isinstance(value, torch.Tensor | Kitchen) else value
        return KitchenLayout(**moved)

    def from_positions(self, cells: torch.Tensor) -> Kitchen:
        """Games [len(cells)] with the players on ``cells`` [n, 2], facing north, empty-handed,
        no objects, timestep 0 (the package's OvercookedState.from_player_positions)."""
        n, device = len(cells), cells.device
        zeros = torch.zeros((n, 2), dtype=torch.long, device=device)
        grid = torch.zeros((n, self.cells), dtype=torch.long, device=device)
        return Kitchen(
            pos=cells.long(),
            ori=zeros.clone(),
            held=zeros.clone(),
            held_code=zeros.clone(),
            held_tick=zeros - 1,
            kind=grid.clone(),
            code=grid.clone(),
            tick=grid - 1,
            stamp=grid.clone(),
            timestep=torch.zeros(n, dtype=torch.long, device=device),
        )


def configure_recipes(mdp: Any) -> None:
    """overcooked-ai keeps the recipe configuration in a class attribute, set by the last mdp
    built in the process; re-apply ``mdp``'s before using recipes."""
    recipe = import_overcooked("mdp.overcooked_mdp").Recipe
    if recipe._conf is not mdp.recipe_config:
        recipe.configure(mdp.recipe_config)


def _soup_tables(mdp: Any, orders_state: Any) -> dict[str, Any]:
    """Per ingredient code: length, counts, cook time, value, and the code after adding."""
    recipe_cls = import_overcooked("mdp.overcooked_mdp").Recipe
    configure_recipes(mdp)
    most = recipe_cls.MAX_NUM_INGREDIENTS
    codes = 3**most
    table = {k: [0] * codes for k in ("length", "onions", "tomatoes", "time", "value")}
    append = [[0, 0, 0] for _ in range(codes)]
    for length in range(most + 1):
        for digits in itertools.product((ONION, TOMATO), repeat=length):
            code = sum(d * 3**k for k, d in enumerate(digits))
            table["length"][code] = length
            table["onions"][code] = digits.count(ONION)
            table["tomatoes"][code] = digits.count(TOMATO)
            if length:
                recipe = recipe_cls([OBJECT_NAMES[d] for d in digits])
                table["time"][code] = recipe.time
                table["value"][code] = mdp.get_recipe_value(orders_state, recipe)
            if length < most:
                append[code][ONION] = code + ONION * 3**length
                append[code][TOMATO] = code + TOMATO * 3**length
    value = table.pop("value")
    out = {f"soup_{k}": torch.tensor(v, dtype=torch.long) for k, v in table.items()}
    out["soup_value"] = torch.tensor(value, dtype=torch.float32)  # may be inf
    out["soup_append"] = torch.tensor(append, dtype=torch.long)
    out["max_ingredients"] = most
    return out


@functools.lru_cache(maxsize=16)
def kitchen_layout(layout: str) -> KitchenLayout:
    """The tables of overcooked-ai layout ``layout`` (CPU; `KitchenLayout.to` moves them)."""
    mdp_mod = import_overcooked("mdp.overcooked_mdp")
    mdp = mdp_mod.OvercookedGridworld.from_layout_name(layout)
    if mdp.num_players != 2:
        raise ValueError(f"layout '{layout}' has {mdp.num_players} players, not 2")
    width, height = mdp.width, mdp.height
    terrain = [0] * (width * height)
    move = [[0] * 4 for _ in terrain]
    front = [[0] * 4 for _ in terrain]
    free = set(mdp.get_valid_player_positions())
    for x, y in itertools.product(range(width), range(height)):
        cell = x * height + y
        terrain[cell] = TERRAIN.index(mdp.get_terrain_type_at_pos((x, y)))
        for d, (dx, dy) in enumerate(DIRECTIONS):
            nx, ny = x + dx, y + dy
            inside = 0 <= nx < width and 0 <= ny < height
            front[cell][d] = nx * height + ny if inside else cell
            move[cell][d] = nx * height + ny if (nx, ny) in free else cell
    standard = mdp.get_standard_start_state()
    orders = standard.to_dict()
    random_start = mdp_mod.OvercookedState.from_player_positions(
        mdp.start_player_positions,
        bonus_orders=mdp.start_bonus_orders,
        all_orders=mdp.start_all_orders,
    ).to_dict()
    if (orders["bonus_orders"], orders["all_orders"]) != (
        random_start["bonus_orders"],
        random_start["all_orders"],
    ):
        raise ValueError(f"layout '{layout}': its start state's orders differ from its own")
    dispensed = [NOTHING] * len(TERRAIN)
    dispensed[ONION_DISPENSER], dispensed[TOMATO_DISPENSER] = ONION, TOMATO
    dispensed[DISH_DISPENSER] = DISH
    shaping = mdp.reward_shaping_params
    joint = mdp.get_valid_joint_player_positions()
    kitchen = KitchenLayout(
        name=layout,
        width=width,
        height=height,
        terrain=torch.tensor(terrain, dtype=torch.long),
        move=torch.tensor(move, dtype=torch.long),
        front=torch.tensor(front, dtype=torch.long),
        pots=torch.tensor([x * height + y for x, y in mdp.get_pot_locations()], dtype=torch.long),
        dispensed=torch.tensor(dispensed, dtype=torch.long),
        potting_reward=shaping["PLACEMENT_IN_POT_REW"],
        dish_reward=shaping["DISH_PICKUP_REWARD"],
        soup_reward=shaping["SOUP_PICKUP_REWARD"],
        joint_starts=torch.tensor(
            [[x * height + y for x, y in pair] for pair in joint], dtype=torch.long
        ),
        start=None,  # type: ignore[arg-type]  # needs the tables: set below
        bonus_orders=orders["bonus_orders"],
        all_orders=orders["all_orders"],
        **_soup_tables(mdp, standard),
    )
    kitchen.start = from_package_states(kitchen, [standard])
    return kitchen


# -- the rules ---------------------------------------------------------------------------


@dataclass
class StepResult:
    sparse: torch.Tensor
    """[B, 2] float32: each player's delivery reward (the package's sparse_r_by_agent)."""
    shaped: torch.Tensor
    """[B, 2] float32: each player's shaped reward (shaped_r_by_agent)."""
    counters: torch.Tensor
    """[B, 2, 4] float32: per player, the EVENT_COLUMNS (0 or 1 each)."""


def _no_partial_cooking(lay: KitchenLayout, k: Kitchen, joint: torch.Tensor) -> torch.Tensor:
    """STAY instead of an empty-handed interact with a pot whose soup is not full, cooking
    or ready (judged on the state before the step, for both players)."""
    rows = torch.arange(len(joint), device=joint.device).unsqueeze(1)
    facing = lay.front[k.pos, k.ori]  # [B, 2]
    kind, code, tick = k.kind[rows, facing], k.code[rows, facing], k.tick[rows, facing]
    partial = (kind == SOUP) & (tick < 0) & (lay.soup_length[code] < lay.max_ingredients)
    cancel = (joint == INTERACT) & (k.held == NOTHING) & (lay.terrain[facing] == POT) & partial
    return torch.where(cancel, STAY, joint)


def _non_empty_pots(lay: KitchenLayout, k: Kitchen) -> torch.Tensor:
    """[B] pots that are cooking, ready or partially filled (the dish-usefulness count)."""
    kind, code, tick = k.kind[:, lay.pots], k.code[:, lay.pots], k.tick[:, lay.pots]
    idle = tick < 0
    partial = idle & (lay.soup_length[code] > 0) & (lay.soup_length[code] < lay.max_ingredients)
    return ((kind == SOUP) & (~idle | partial)).sum(1)


def _interact(
    lay: KitchenLayout,
    k: Kitchen,
    p: int,
    on: torch.Tensor,
    non_empty_pots: torch.Tensor,
    out: StepResult,
) -> None:
    """Player ``p``'s interact where ``on`` [B], applied to ``k`` in place; rewards and
    events into ``out``."""
    rows = torch.arange(len(on), device=on.device)
    facing = lay.front[k.pos[:, p], k.ori[:, p]]
    terrain = lay.terrain[facing]
    held, held_code, held_tick = k.held[:, p], k.held_code[:, p], k.held_tick[:, p]
    kind, code, tick = k.kind[rows, facing], k.code[rows, facing], k.tick[rows, facing]
    empty_hand, has_obj = held == NOTHING, kind != NOTHING
    idle = tick < 0
    length = lay.soup_length[code]
    ready = (kind == SOUP) & ~idle & (tick >= lay.soup_time[code])

    at_counter = on & (terrain == COUNTER)
    drop = at_counter & ~empty_hand & ~has_obj
    pick = at_counter & empty_hand & has_obj
    dispense = on & empty_hand & (lay.dispensed[terrain] != NOTHING)
    at_pot = on & (terrain == POT)
    cook = at_pot & empty_hand & (kind == SOUP) & idle & (length > 0)
    take_soup = at_pot & (held == DISH) & ready
    ingredient = (held == ONION) | (held == TOMATO)
    add = at_pot & ingredient & (~has_obj | (idle & (length < lay.max_ingredients)))
    serve = on & (terrain == SERVING) & (held == SOUP)

    dish_dispensed = dispense & (terrain == DISH_DISPENSER)
    counter_dishes = ((k.kind == DISH) & (lay.terrain == COUNTER)).any(1)
    players_dishes = (k.held == DISH).sum(1)
    useful = ~counter_dishes & (players_dishes < non_empty_pots)

    out.sparse[:, p] += torch.where(serve, lay.soup_value[held_code], 0.0)
    out.shaped[:, p] += (
        lay.potting_reward * add
        + lay.dish_reward * (dish_dispensed & useful)
        + lay.soup_reward * take_soup
    )
    out.counters[:, p, 1] += add & (held == ONION)
    out.counters[:, p, 2] += dish_dispensed | (pick & (kind == DISH))
    out.counters[:, p, 3] += serve

    # the cell in front: the dropped object, nothing after a pickup, the potted soup
    stamp = 2 * k.timestep + p
    soup_added = lay.soup_append[torch.where(has_obj, code, 0), torch.where(ingredient, held, 0)]
    new_kind = torch.where(drop, held, torch.where(pick | take_soup, NOTHING, kind))
    new_kind = torch.where(add, SOUP, new_kind)
    new_code = torch.where(drop, held_code, torch.where(pick | take_soup, 0, code))
    new_code = torch.where(add, soup_added, new_code)
    new_tick = torch.where(drop, held_tick, torch.where(pick | take_soup, -1, tick))
    new_tick = torch.where(cook, 0, new_tick)
    placed = drop | (add & ~has_obj)
    k.kind[rows, facing] = new_kind
    k.code[rows, facing] = new_code
    k.tick[rows, facing] = new_tick
    k.stamp[rows, facing] = torch.where(placed, stamp, k.stamp[rows, facing])

    # the hands
    gone = drop | add | serve
    new_held = torch.where(gone, NOTHING, held)
    new_held = torch.where(pick | take_soup, kind, new_held)
    new_held = torch.where(dispense, lay.dispensed[terrain], new_held)
    k.held[:, p] = new_held
    k.held_code[:, p] = torch.where(gone, 0, torch.where(pick | take_soup, code, held_code))
    k.held_tick[:, p] = torch.where(gone, -1, torch.where(pick | take_soup, tick, held_tick))


def _move(lay: KitchenLayout, k: Kitchen, joint: torch.Tensor) -> torch.Tensor:
    """Moves and turns in place; [B, 2] bool: whose move a collision undid."""
    direction = joint < len(DIRECTIONS)
    target = torch.where(direction, lay.move[k.pos, joint.clamp(max=3)], k.pos)
    collided = (target[:, 0] == target[:, 1]) | (
        (target[:, 0] == k.pos[:, 1]) & (target[:, 1] == k.pos[:, 0])
    )
    collided = collided.unsqueeze(1)
    bumped = collided & (target != k.pos)
    k.pos = torch.where(collided, k.pos, target)
    k.ori = torch.where(direction, joint, k.ori)
    return bumped


def step(
    lay: KitchenLayout, k: Kitchen, joint: torch.Tensor, cook_full_pots_only: bool
) -> StepResult:
    """Apply ``joint`` [B, 2] (action indices, the package's order) to every game of ``k``
    in place: the package's get_state_transition plus srpo's cooking rule."""
    batch, device = len(joint), joint.device
    if cook_full_pots_only:
        joint = _no_partial_cooking(lay, k, joint)
    out = StepResult(
        sparse=torch.zeros((batch, 2), dtype=torch.float32, device=device),
        shaped=torch.zeros((batch, 2), dtype=torch.float32, device=device),
        counters=torch.zeros((batch, 2, len(EVENT_COLUMNS)), dtype=torch.float32, device=device),
    )
    non_empty = _non_empty_pots(lay, k)
    for p in (0, 1):
        _interact(lay, k, p, joint[:, p] == INTERACT, non_empty, out)
    out.counters[:, :, 0] = _move(lay, k, joint).float()
    cooking = (k.kind == SOUP) & (k.tick >= 0) & (k.tick < lay.soup_time[k.code])
    k.tick = k.tick + cooking
    k.timestep = k.timestep + 1
    return out


# -- the package's states ----------------------------------------------------------------


def _package_object(mdp_mod: Any, kind: int, code: int, tick: int, xy: tuple[int, int]) -> Any:
    if kind != SOUP:
        return mdp_mod.ObjectState(OBJECT_NAMES[kind], xy)
    ingredients = []
    while code:
        ingredients.append(mdp_mod.ObjectState(OBJECT_NAMES[code % 3], xy))
        code //= 3
    return mdp_mod.SoupState(xy, ingredients, tick)


def to_package_states(lay: KitchenLayout, k: Kitchen, mdp: Any) -> list[Any]:
    """Every game of ``k`` as the package's OvercookedState (objects in insertion order),
    built as the package's own transitions build them."""
    mdp_mod = import_overcooked("mdp.overcooked_mdp")
    configure_recipes(mdp)
    host = {f.name: getattr(k, f.name).tolist() for f in dataclasses.fields(k)}
    states = []
    for b, timestep in enumerate(host["timestep"]):
        players = []
        for p, cell in enumerate(host["pos"][b]):
            xy = lay.xy(cell)
            held = host["held"][b][p], host["held_code"][b][p], host["held_tick"][b][p]
            obj = _package_object(mdp_mod, *held, xy) if held[0] != NOTHING else None
            players.append(mdp_mod.PlayerState(xy, DIRECTIONS[host["ori"][b][p]], obj))
        kinds, codes, ticks, stamps = (host[key][b] for key in ("kind", "code", "tick", "stamp"))
        cells = sorted((c for c, kind in enumerate(kinds) if kind), key=stamps.__getitem__)
        objects = {
            lay.xy(c): _package_object(mdp_mod, kinds[c], codes[c], ticks[c], lay.xy(c))
            for c in cells
        }
        states.append(
            mdp_mod.OvercookedState(
                players,
                objects,
                bonus_orders=lay.bonus_orders,
                all_orders=lay.all_orders,
                timestep=timestep,
            )
        )
    return states


def _encode_object(obj: Any) -> tuple[int, int, int]:
    """(kind, code, tick) of a package object."""
    kind = OBJECT_NAMES.index(obj.name)
    if kind != SOUP:
        return kind, 0, -1
    code = sum(OBJECT_NAMES.index(name) * 3**i for i, name in enumerate(obj.ingredients))
    return kind, code, obj._cooking_tick


def from_package_states(lay: KitchenLayout, states: list[Any]) -> Kitchen:
    """Games (CPU) from the package's OvercookedStates or their ``to_dict``s; their orders
    must be the layout's."""
    mdp_mod = import_overcooked("mdp.overcooked_mdp")
    k = lay.from_positions(torch.zeros((len(states), 2), dtype=torch.long))
    host = {f.name: getattr(k, f.name).tolist() for f in dataclasses.fields(k)}
    for b, state in enumerate(states):
        if isinstance(state, dict):
            state = mdp_mod.OvercookedState.from_dict(state)
        orders = [r.to_dict() for r in state.bonus_orders], [r.to_dict() for r in state.all_orders]
        if orders != (lay.bonus_orders, lay.all_orders):
            raise ValueError(f"a state's orders are not those of layout '{lay.name}'")
        for p, player in enumerate(state.players):
            host["pos"][b][p] = lay.cell(player.position)
            host["ori"][b][p] = DIRECTIONS.index(tuple(player.orientation))
            if player.held_object is not None:
                held = _encode_object(player.held_object)
                for key, value in zip(("held", "held_code", "held_tick"), held, strict=True):
                    host[key][b][p] = value
        objects = list(state.objects.values())
        for order, obj in enumerate(objects):
            c = lay.cell(obj.position)
            for key, value in zip(("kind", "code", "tick"), _encode_object(obj), strict=True):
                host[key][b][c] = value
            host["stamp"][b][c] = order - len(objects)
        host["timestep"][b] = state.timestep
    return Kitchen(**{name: torch.tensor(v, dtype=torch.long) for name, v in host.items()})
