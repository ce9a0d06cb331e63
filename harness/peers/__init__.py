"""Real peers the checks talk to: raw HTTP/TLS servers, openssl-made certificates, slapd,
an SMTP sink, keepalived in network namespaces, and the executables run as keepalived does."""
