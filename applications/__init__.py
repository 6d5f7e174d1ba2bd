"""Applications of neuron descriptions (the paper's section 5): a browsable report of a model's units,
search over descriptions, ablation of units chosen by what they are said to do, and the editing and
audit experiments reproduced on the synthetic world.

This room sits after `eval` (it may import milannotations, baselines and eval) and before
`leaderboard`, which does not use it.
"""
