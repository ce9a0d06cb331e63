"""The health checks keepalived forks: http, tcp, ldap (see registry.CHECKS).

Each check module parses its options into a frozen Target and probes it;
``contract`` evaluates and reports, ``verdict`` decides the exit code.
"""
