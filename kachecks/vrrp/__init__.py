"""The VRRP pair seen from the wire: decoding, sockets, detection (docs/vrrp.md).

``wire`` decodes adverts, ``bpf`` keeps every other packet in the kernel,
``sockets`` opens the two vantage points of an interface, ``addresses``
follows the interface addresses (who holds the VIPs), ``instances`` reads
keepalived.conf's vrrp_instance blocks, ``detect`` is the pure detector and
``watcher`` puts them together for the check, ``kachecks vrrp watch`` and
the agent.
"""
