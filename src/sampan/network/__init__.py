"""Container networking: address management, bridges and veths, NAT and published ports.

The engine calls these pieces; none of them knows about containers beyond an id, a
network namespace and an address, so each is tested against the real kernel alone.
A bridge-mode container's life, as the engine strings it together::

    enable_ip_forward()                                   # sysctl; record the old value
    nat = Nat(); nat.setup()                              # once per daemon start
    ipam = Ipam(state_dir)
    sub = ipam.request_subnet(net_id)                     # network create
    create_bridge(bridge_name(net_id), sub.gateway_interface)
    nat.add_network(bridge_name(net_id), sub.subnet, internal=False)
    addr = ipam.request_address(net_id, ctr_id)           # container start
    attach(bridge_name(net_id), f"/proc/{pid}/ns/net", veth_name(ctr_id), addr, sub.gateway)
    bindings = holder.reserve(ctr_id, ports.parse("8080:80"))   # a PortHolder per daemon
    nat.publish(ctr_id, addr.ip, bindings)
    ...                                                   # container stop, in reverse:
    nat.unpublish(ctr_id); holder.release(ctr_id)
    detach(veth_name(ctr_id)); ipam.release_address(net_id, ctr_id)

Modules: ipam (subnets and addresses, persisted), bridge (netlink), nat (nftables),
ports (``-p`` and held host ports), dns (the embedded 127.0.0.11 server), files
(/etc/hosts, resolv.conf, hostname), netlink and sysctl (kernel access), statefile.
"""
