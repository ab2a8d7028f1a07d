"""Populations: K runs of one shape trained as one batched computation (issue 15).

`stacked` holds K members' networks as stacked tensors, `optim` their per-member Adam,
`members` what may differ between members, `trainer` the batched IPPO/SRPO iteration.
"""
