"""``kachecks doctor``: audit keepalived.conf against the live servers before a reload."""
