"""State-change notifications: spool first, deliver detached (docs/notifications.md)."""
