"""Optional resident worker that runs checks forked from a warm process (docs/performance.md)."""
