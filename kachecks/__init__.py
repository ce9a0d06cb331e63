"""kachecks: health checks, genhash and notifications for keepalived.

Kept import-free: every check executable imports this package first, and
its start-up cost is the product's cost (docs/performance.md).
"""

__version__ = "0.1.0"
