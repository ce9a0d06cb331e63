"""State-change notifications: spool first, deliver detached (SPEC §4)."""
