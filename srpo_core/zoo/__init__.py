"""Partner zoos: named sets of partner policies for one env configuration.

A member is a registered policy pinned to one checkpoint (step + sha256) when it is trained,
or a built-in scripted or random policy. Freezing fixes the zoo's manifest (members, their
checkpoint hashes, the env config and its hash) under a sha256; a frozen zoo refuses
changes and can be exported as a self-contained archive (`srpo_core.zoo.archive`) that
another registry imports after checking every hash. A held-out zoo's policies may never be
training partners.

Modules: `games` (which game an env config poses), `pinning`, `build`, `manifest`
(freezing), `archive` (export and import), `training` (co-players, the held-out rule).
"""
