"""``scripts/bench``: what each kachecks executable costs per run, beside its C peer.

``servers`` starts the local peers, ``measure`` runs the commands interleaved and
collects samples, ``render`` turns them into the table of docs/performance.md and
``cli`` ties them together.
"""
