"""The seeded chaos harness: many seeded runs of a randomized workload under randomized faults
against the whole `make run` stack, each checked against the ground truth it recorded and each
reproducible from its seed. `make chaos SEEDS=1-200` or `python -m bench chaos --seeds 1-200`;
README "Chaos harness". Not part of `make bench` (no `run()`)."""
