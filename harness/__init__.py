"""The developer harness: real peers, the reference lab and the bench.

Never shipped (the .deb packages ``kachecks`` only) and never dependent on pytest:
the tests wrap these classes in fixtures, while ``scripts/lab`` and ``scripts/bench``
run them as plain programs. Nothing here imports ``tests``.
"""
