"""The PPO core (`ppo`) and the trainers of runs that are not populations: the recurrent
learners (`recurrent`, on the `base.Algorithm` frame). Feed-forward IPPO and SRPO, solo
runs included, train in `srpo_core.population`."""
