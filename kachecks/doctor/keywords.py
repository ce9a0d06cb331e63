"""keepalived.conf keywords, block by block, as keepalived knows them.

Read from keepalived's own keyword registrations (every ``install_keyword``
of releases 2.2.7 to 2.4.3 and of the development branch), so a keyword any
of them accepts is never flagged: a Debian 12 director (keepalived 2.2.7) and
a Debian 13 one (2.3.3) read the same file. ``keepalived -t``, when it is
installed, then says what the installed version itself does not know.
Keywords are case-sensitive, as in keepalived (``Nopreempt`` is unknown).

Format: one block per ``NAME:`` line, its keywords indented below it;
``NAME@VERSION`` is a keyword the first release VERSION accepted (``dev``:
not released yet); ``NAME=OTHER`` has the same keywords as OTHER. A keyword
without its own list takes any ``{ … }`` content (address lists, script names).
"""

TABLE = """\
bfd_instance:
  checker hoplimit idle_tx max_hops min_rx min_tx multihop@2.2.8 multiplier neighbor_ip
  neighbour_ip passive source_ip ttl vrrp weight
child_wait_time
garp_group:
  garp_interval gna_interval interface interfaces
global_defs:
  bfd_cpu_affinity bfd_no_swap bfd_priority bfd_process_name bfd_rlimit_rtime
  bfd_rlimit_rttime bfd_rt_priority checker_cpu_affinity checker_log_all_failures
  checker_no_swap checker_priority checker_process_name checker_rlimit_rtime
  checker_rlimit_rttime checker_rt_priority config_save_dir data_use_instance
  dbus_no_interface_name@2.3.0 dbus_service_name default_interface disable_local_igmp
  dynamic_interfaces enable_dbus enable_script_security enable_snmp_checker
  enable_snmp_keepalived enable_snmp_rfc enable_snmp_rfcv2 enable_snmp_rfcv3
  enable_snmp_vrrp enable_traps fifo_write_vrrp_states_on_reload include_check
  iproute_etc_dir@2.3.2 iproute_usr_dir@2.3.2 json_dump_file@2.3.3 json_version@2.2.8
  log_unknown_vrids lvs_flush lvs_flush_on_stop lvs_flush_onstop lvs_netlink_cmd_rcv_bufs
  lvs_netlink_cmd_rcv_bufs_force lvs_netlink_monitor_rcv_bufs
  lvs_netlink_monitor_rcv_bufs_force lvs_notify_fifo lvs_notify_fifo_script
  lvs_process_name lvs_sync_daemon lvs_timeouts max_auto_priority min_auto_priority_delay
  nftables nftables_counters nftables_ifindex nftables_ipvs nftables_ipvs_priority
  nftables_ipvs_start_fwmark nftables_priority no_checker_emails no_email_faults
  notification_email notification_email_from notify_fifo notify_fifo_script
  process_monitor_rcv_bufs process_monitor_rcv_bufs_force process_name process_names
  random_seed reload_check_config reload_file reload_repeat reload_time_file router_id
  rs_init_notifies script_user set_supplementary_groups@dev shutdown_script
  shutdown_script_timeout smtp_alert smtp_alert_checker smtp_alert_vrrp
  smtp_connect_timeout smtp_helo_name smtp_server snmp_rs_stats_update_interval@2.3.0
  snmp_socket snmp_vs_stats_update_interval@2.3.0 startup_script startup_script_timeout
  state_dump_file@2.3.3 stats_dump_file@2.3.3 tmp_config_directory umask
  use_symlink_paths@2.3.0 v3_checksum_as_v2@2.2.8 vmac_addr_prefix vmac_prefix
  vrrp_check_unicast_src vrrp_cpu_affinity vrrp_delay_after_boot@2.4.0
  vrrp_down_timer_adverts vrrp_garp_extra_if vrrp_garp_interval vrrp_garp_lower_prio_delay
  vrrp_garp_lower_prio_repeat vrrp_garp_master_delay vrrp_garp_master_refresh
  vrrp_garp_master_refresh_repeat vrrp_garp_master_repeat vrrp_gna_interval
  vrrp_higher_prio_send_advert vrrp_ipsets vrrp_iptables vrrp_lower_prio_no_advert
  vrrp_mcast_group4 vrrp_mcast_group6 vrrp_min_garp vrrp_netlink_cmd_rcv_bufs
  vrrp_netlink_cmd_rcv_bufs_force vrrp_netlink_monitor_rcv_bufs
  vrrp_netlink_monitor_rcv_bufs_force vrrp_no_swap vrrp_notify_fifo vrrp_notify_fifo_script
  vrrp_notify_priority_changes vrrp_owner_ignore_adverts@2.3.3 vrrp_priority
  vrrp_process_name vrrp_rlimit_rtime vrrp_rlimit_rttime vrrp_rt_priority
  vrrp_rx_bufs_multiplier vrrp_rx_bufs_policy vrrp_skip_check_adv_addr vrrp_startup_delay
  vrrp_strict vrrp_version vrrp_vmac_garp_intvl
instance interface_up_down_delays linkbeat_interfaces linkbeat_use_polling
namespace_with_ipsets net_namespace net_namespace_ipvs
SSL:
  ca certificate key password
static_ipaddress static_routes static_rules
track_file:
  file init_file weight
track_group:
  group
use_pid_dir
virtual_server:
  alpha connect_timeout delay_before_retry delay_loop flag-1 flag-2 flag-3 ha_suspend
  hashed hysteresis inhibit_on_failure ip_family lb_algo lb_kind lvs_method lvs_sched
  mh-fallback mh-port omega ops persistence_engine persistence_granularity
  persistence_timeout protocol quorum quorum_down quorum_up
  real_server:
    alpha
    BFD_CHECK:
      alpha name
    connect_timeout delay_before_retry delay_loop
    DNS_CHECK:
      alpha bind_if bind_port bindto connect_ip connect_port connect_timeout
      delay_before_retry delay_loop fwmark log_all_failures name retry type warmup
    FILE_CHECK:
      track_file weight
    HTTP_GET:
      alpha bind_if bind_port bindto connect_ip connect_port connect_timeout
      delay_before_retry delay_loop enable_sni fast_recovery fwmark http_protocol
      log_all_failures nb_get_retry retry sni_name@dev
      url:
        digest path regex regex_max_offset regex_min_offset regex_no_match regex_options
        regex_stack status_code virtualhost
      virtualhost warmup
    inhibit_on_failure lthreshold lvs_method
    MISC_CHECK:
      alpha delay_before_retry delay_loop log_all_failures misc_dynamic misc_path
      misc_timeout retry user warmup
    notify_down notify_up
    PING_CHECK:
      alpha bind_if bind_port bindto connect_ip connect_port connect_timeout
      delay_before_retry delay_loop fwmark log_all_failures retry warmup
    retry smtp_alert
    SMTP_CHECK:
      alpha bind_if bind_port bindto connect_ip connect_port connect_timeout
      delay_before_retry delay_loop fwmark helo_name
      host:
        alpha bind_if bind_port bindto connect_ip connect_port connect_timeout
        delay_before_retry delay_loop fwmark log_all_failures retry warmup
      log_all_failures retry warmup
    snmp_name
    SSL_GET:
      alpha bind_if bind_port bindto connect_ip connect_port connect_timeout
      delay_before_retry delay_loop enable_sni fast_recovery fwmark http_protocol
      log_all_failures nb_get_retry retry sni_name@dev tls_compliant@2.2.8
      url:
        digest path regex regex_max_offset regex_min_offset regex_no_match regex_options
        regex_stack status_code tls_compliant@2.2.8 virtualhost
      virtualhost warmup
    TCP_CHECK:
      alpha bind_if bind_port bindto connect_ip connect_port connect_timeout
      delay_before_retry delay_loop fwmark log_all_failures retry warmup
    UDP_CHECK:
      alpha bind_if bind_port bindto connect_ip connect_port connect_timeout
      delay_before_retry delay_loop fwmark log_all_failures max_reply_length
      min_reply_length payload require_reply retry warmup
    uthreshold virtualhost warmup weight
  retry sh-fallback sh-port smtp_alert snmp_name sorry_server sorry_server_inhibit
  sorry_server_lvs_method virtualhost warmup weight
virtual_server_group
vrrp_instance:
  accept advert_int
  auth_hmac@2.4.0:
    active_key@2.4.0 anti_replay@2.4.0 key@2.4.0 mode@2.4.0 time_window@2.4.0
  authentication:
    auth_pass auth_type
  check_unicast_src debug dont_track_primary down_timer_adverts garp_extra_if
  garp_lower_prio_delay garp_lower_prio_repeat garp_master_delay garp_master_refresh
  garp_master_refresh_repeat garp_master_repeat higher_prio_send_advert interface
  kernel_rx_buf_size linkbeat_use_polling lower_prio_no_advert lvs_sync_daemon_interface
  mcast_dst_ip mcast_src_ip native_ipv6 no_accept no_virtual_ipaddress@2.2.8 nopreempt
  notify notify_backup notify_deleted notify_fault notify_master notify_master_rx_lower_pri
  notify_priority_changes notify_stop old_unicast_checksum owner_ignore_adverts@2.3.3
  preempt preempt_delay priority promote_secondaries skip_check_adv_addr smtp_alert state
  strict_mode thread_timer_expired@2.3.2 timer_expired_backup@2.2.8 track_bfd track_file
  track_interface track_process track_script track_src_ip unicast_fault_no_peer
  unicast_peer unicast_src_ip unicast_ttl use_ipvlan use_vmac use_vmac_addr
  v3_checksum_as_v2@2.2.8 version virtual_ipaddress virtual_ipaddress_excluded
  virtual_router_id virtual_routes virtual_rules vmac_garp_intvl vmac_xmit_base vrf
vrrp_script:
  fall init_fail interval rise script timeout user weight
vrrp_sync_group:
  global_tracking group notify notify_backup notify_fault notify_master
  notify_priority_changes notify_stop smtp_alert sync_group_tracking_weight track_bfd
  track_file track_interface track_process track_script
vrrp_track_file:
  file init_file weight
vrrp_track_process:
  delay fork_delay full_command param_match process quorum quorum_max terminate_delay
  weight
"""


class Keyword:
    """One keyword: its name, the release that added it, its block's keywords.

    ``block`` is None for a keyword whose ``{ … }`` content keepalived reads as
    values (``virtual_ipaddress``) or that takes no block at all.
    """

    __slots__ = ("name", "since", "block")

    def __init__(self, name, since, block):
        self.name = name
        self.since = since
        self.block = block


def _parse(text):
    root: dict[str, Keyword] = {}
    stack = [(-1, root)]
    named: dict[str, Keyword] = {}
    for line in text.splitlines():
        indent = len(line) - len(line.lstrip())
        while stack[-1][0] >= indent:
            stack.pop()
        block = stack[-1][1]
        for word in line.split():
            if "=" in word:
                name, _, other = word.partition("=")
                block[name] = Keyword(name, None, named[other].block)
                continue
            opens = word.endswith(":")
            name, _, since = word.rstrip(":").partition("@")
            keyword = Keyword(name, since or None, {} if opens else None)
            block[name] = keyword
            named[name] = keyword
            if opens:
                stack.append((indent, keyword.block))
    return root


_ROOT: "list[dict[str, Keyword]]" = []


def root():
    """{name: Keyword} of the top level (parsed once)."""
    if not _ROOT:
        _ROOT.append(_parse(TABLE))
    return _ROOT[0]
