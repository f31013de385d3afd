"""Analytics over every evaluation run: history, trends, paired comparisons, outcome rates.

`store` keeps tables as Parquet in the artifact store, `history` appends runs to the history,
`stats` computes the derived tables; the assets (assets/analytics.py), `evalctl history` /
`evalctl compare` and bench/analytics.py all use these same functions.

Layer 8. May import: layers 0-7 (`core` ... `evaluation`).
"""
