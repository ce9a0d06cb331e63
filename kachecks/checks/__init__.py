"""The health checks keepalived forks: http, tcp, ldap.

Each probe module only probes; ``contract`` runs it under the exit-code
contract of SPEC §2 and ``verdict`` decides the exit code.
"""
