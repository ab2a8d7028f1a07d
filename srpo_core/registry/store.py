"""The experiment registry: runs, metrics, checkpoints and policies in one SQL database.

SQLite by default (a `srpo.db` file beside a `srpo-artifacts/` folder, like MLflow's mlflow.db),
any SQLAlchemy URL otherwise (PostgreSQL: postgresql+psycopg://). Several training processes
write to one SQLite file at once, so a registry file runs in WAL mode and every write
transaction takes the write lock up front.

The schema is versioned (see `migrations`); opening a registry checks the version, and only
an opening that may write creates or upgrades it. A database srpo did not make is refused
and left as it is. A run being trained carries a lease (see `Registry.acquire_lease`), so a
second process cannot train it at the same time and a dead trainer is recognised.
"""

from .checkpoints import CheckpointStore
from .metrics import MetricStore
from .policies import PolicyStore
from .results import ResultStore
from .runs import RunStore
from .zoos import ZooStore


class Registry(RunStore, MetricStore, CheckpointStore, PolicyStore, ZooStore, ResultStore):
    """Handle on one registry database and its artifact folder.

    Every method is one short transaction and returns frozen dataclasses, so callers never hold
    a session or a lock. Open one Registry per process. A database error inside a method
    becomes a one-line `RegistryError` (`RegistryUnavailableError` when the database is
    unreachable or locked, which `retrying` tries again).

    Timing comes from the environment, in seconds: $SRPO_DB_TIMEOUT_S (default 30) how long a
    SQLite writer waits for the lock or a PostgreSQL connection attempt lasts;
    $SRPO_DB_RETRY_S (60) how long `retrying` keeps trying; $SRPO_LEASE_TTL_S (120) how long
    a run's lease lasts without a heartbeat (a trainer renews it every quarter of that).

    One store per concern, each in its own module, all on one `database.Database` (opening,
    schema, `_tx`, `retrying`, `close`): `leases.LeaseStore` (a run's row and lease, under
    the stores that write to runs), `runs.RunStore`, `metrics.MetricStore`,
    `checkpoints.CheckpointStore`, `policies.PolicyStore`, `zoos.ZooStore` and
    `results.ResultStore` (cross-play results).
    """
