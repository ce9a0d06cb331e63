"""The reference deployment in network namespaces (``scripts/lab``, ``python3 -m harness.lab``)."""
