"""Evaluation: cross-play of agents with partners (`crossplay`: plans of seatings, played
and stored by key), and what is read from the stored results (`pool`: cross-play matrices,
TP and CP; `leaderboard`: rankings against a zoo)."""
