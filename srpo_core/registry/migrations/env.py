"""Alembic environment of the registry: migrations run on the connection `upgrade` passes
in, inside the transaction that holds the registry's schema lock."""

from alembic import context

from srpo_core.registry.models import Base

context.configure(connection=context.config.attributes["connection"], target_metadata=Base.metadata)
with context.begin_transaction():
    context.run_migrations()
