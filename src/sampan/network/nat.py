"""NAT and filtering for bridge networks, in nftables tables of sampan's own (the
nftables backend of ``firewall``).

Everything lives in ``table ip <name>`` and, for IPv6, ``table ip6 <name>``: removing
sampan is deleting them, and no other program's rules are read or rewritten. Every
rule sampan adds for a network or a container carries a comment naming it
(``net:<bridge>``, ``ctr:<id>``), so removal finds exactly those rules by handle, also
after a daemon restart.

Localhost access to published ports is done in the kernel, not by a proxy process:
DNAT in the output hook, ``route_localnet`` on the bridge so the kernel routes a packet
from 127.0.0.1 out of it, and masquerade of 127.0.0.0/8 towards the bridge so the
container answers the gateway. It costs no process or copy per port, works for UDP as
for TCP, and keeps one code path; the risk route_localnet brings (a container sending
to the host's 127.0.0.1 through the bridge) is closed by a raw-priority rule dropping
packets to 127.0.0.0/8 that arrive from any sampan bridge. IPv6 has no route_localnet:
packets to ``::1`` are left to the proxy (``proxy``), everything else is DNATed as IPv4.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from sampan.network import sysctl
from sampan.network.errors import NetworkError
from sampan.network.ports import ANY, ANY6, PortBinding

DEFAULT_TABLE = "sampan"


def _comment(kind: str, name: str) -> str:
    return f"{kind}:{name}"


@dataclass(frozen=True)
class Nft:
    """The ``nft`` command: scripts through stdin, listings as JSON."""

    binary: str = "nft"

    def run(self, script: str) -> None:
        try:
            proc = subprocess.run([self.binary, "-f", "-"], input=script, capture_output=True,
                                  text=True, check=False)
        except FileNotFoundError:
            raise NetworkError(f"{self.binary} is not installed") from None
        if proc.returncode != 0:
            raise NetworkError(f"nft failed: {proc.stderr.strip()}\n{script}")

    def list(self, *what: str) -> list[dict[str, object]] | None:
        """``nft -j list <what>`` items, or None when the object does not exist."""
        try:
            proc = subprocess.run([self.binary, "-j", "list", *what], capture_output=True,
                                  text=True, check=False)
        except FileNotFoundError:
            return None
        if proc.returncode != 0:
            if "No such file or directory" in proc.stderr:
                return None
            raise NetworkError(f"nft list {' '.join(what)} failed: {proc.stderr.strip()}")
        items: list[dict[str, object]] = json.loads(proc.stdout)["nftables"]
        return items


class Nat:
    """sampan's nftables tables: masquerade, isolation, and published ports."""

    name = "nftables"

    def __init__(self, table: str = DEFAULT_TABLE, nft: Nft | None = None) -> None:
        self.table = table
        self.nft = nft or Nft()
        self.families = ("ip", "ip6") if os.path.isdir("/proc/sys/net/ipv6") else ("ip",)

    def _rule(self, chain: str, body: str, comment: str, family: str = "ip") -> str:
        return f'add rule {family} {self.table} {chain} {body} comment "{comment}"\n'

    def setup(self) -> None:
        """Create the tables and their base chains unless they are there (idempotent)."""
        t = self.table
        if self.nft.list("table", "ip", t) is None:
            self.nft.run(
                f"table ip {t} {{\n"
                "  set bridges { type ifname; }\n"
                "  chain guard { type filter hook prerouting priority raw; policy accept;\n"
                "    iifname @bridges ip daddr 127.0.0.0/8 drop; }\n"
                "  chain publish { }\n"
                "  chain prerouting { type nat hook prerouting priority dstnat; policy accept;\n"
                "    fib daddr type local jump publish; }\n"
                "  chain output { type nat hook output priority -100; policy accept;\n"
                "    fib daddr type local jump publish; }\n"
                "  chain postrouting { type nat hook postrouting priority srcnat;\n"
                "    policy accept; }\n"
                "  chain forward { type filter hook forward priority filter; policy accept;\n"
                "    ct status dnat accept; }\n"
                "}\n"
            )
        if "ip6" in self.families and self.nft.list("table", "ip6", t) is None:
            self.nft.run(
                f"table ip6 {t} {{\n"
                "  set bridges { type ifname; }\n"
                "  chain publish { }\n"
                "  chain prerouting { type nat hook prerouting priority dstnat; policy accept;\n"
                "    fib daddr type local jump publish; }\n"
                "  chain output { type nat hook output priority -100; policy accept;\n"
                "    ip6 daddr != ::1 fib daddr type local jump publish; }\n"
                "  chain postrouting { type nat hook postrouting priority srcnat;\n"
                "    policy accept; }\n"
                "  chain forward { type filter hook forward priority filter; policy accept;\n"
                "    ct status dnat accept; }\n"
                "}\n"
            )

    def teardown(self) -> None:
        """Delete the tables; nothing sampan added stays (absent is no error)."""
        for family in self.families:
            if self.nft.list("table", family, self.table) is not None:
                self.nft.run(f"delete table {family} {self.table}\n")

    def add_network(self, bridge: str, subnet: IPv4Network, internal: bool = False,
                    subnet6: IPv6Network | None = None) -> None:
        """Rules for one bridge network; removes its old rules first, so it is idempotent.

        Not internal: masquerade leaving through any other interface. Internal: nothing
        is forwarded in or out. Always: no forwarding to another sampan bridge, hairpin
        (a container reaching a published port of its own bridge through a host
        address), and localhost access to published ports. The same for ``subnet6`` in
        the ip6 table, but for localhost (the proxy's).
        """
        self.remove_network(bridge)
        sysctl.write(f"net.ipv4.conf.{bridge}.route_localnet", "1")
        script = self._network_rules("ip", bridge, str(subnet), internal)
        script += self._rule(
            "postrouting", f'ip saddr 127.0.0.0/8 oifname "{bridge}" masquerade',
            _comment("net", bridge))
        if subnet6 is not None and "ip6" in self.families:
            script += self._network_rules("ip6", bridge, str(subnet6), internal)
        self.nft.run(script)

    def _network_rules(self, family: str, bridge: str, subnet: str, internal: bool) -> str:
        tag = _comment("net", bridge)
        script = f'add element {family} {self.table} bridges {{ "{bridge}" }}\n'
        if internal:
            script += self._rule("forward", f'iifname "{bridge}" oifname != "{bridge}" drop',
                                 tag, family)
            script += self._rule("forward", f'oifname "{bridge}" iifname != "{bridge}" drop',
                                 tag, family)
        else:
            script += self._rule(
                "postrouting", f'{family} saddr {subnet} oifname != "{bridge}" masquerade',
                tag, family)
        script += self._rule(
            "forward", f'iifname "{bridge}" oifname @bridges oifname != "{bridge}" drop', tag,
            family)
        script += self._rule(
            "postrouting",
            f'{family} saddr {subnet} oifname "{bridge}" ct status dnat masquerade', tag, family)
        return script

    def remove_network(self, bridge: str) -> None:
        """Drop a network's rules and its place in the bridge sets."""
        script = self._delete_tagged([_comment("net", bridge)])
        for family in self.families:
            if self._has_element(family, bridge):
                script += f'delete element {family} {self.table} bridges {{ "{bridge}" }}\n'
        if script:
            self.nft.run(script)

    def _has_element(self, family: str, bridge: str) -> bool:
        items = self.nft.list("set", family, self.table, "bridges") or []
        for item in items:
            body = item.get("set")
            if isinstance(body, dict) and bridge in (body.get("elem") or []):
                return True
        return False

    def publish(self, owner: str, address: IPv4Address, bindings: Iterable[PortBinding],
                address6: IPv6Address | None = None) -> None:
        """DNAT each binding's host port to ``address`` (IPv6 bindings to ``address6``,
        where there is one and the binding is not ``::1``: those are the proxy's)."""
        tag = _comment("ctr", owner)
        script = ""
        for b in bindings:
            if b.host_port == 0:
                raise NetworkError(f"binding {b} has no host port yet")
            if b.v6:
                if address6 is None or b.host_ip == "::1" or "ip6" not in self.families:
                    continue
                match = "" if b.host_ip == ANY6 else f"ip6 daddr {b.host_ip} "
                script += self._rule(
                    "publish",
                    f"{match}{b.proto} dport {b.host_port} dnat to [{address6}]:"
                    f"{b.container_port}", tag, "ip6")
                continue
            match = "" if b.host_ip == ANY else f"ip daddr {b.host_ip} "
            script += self._rule(
                "publish",
                f"{match}{b.proto} dport {b.host_port} dnat to {address}:{b.container_port}",
                tag,
            )
        if script:
            self.nft.run(script)

    def unpublish(self, owner: str) -> None:
        """Remove every published-port rule of ``owner``."""
        script = self._delete_tagged([_comment("ctr", owner)])
        if script:
            self.nft.run(script)

    def _delete_tagged(self, tags: list[str]) -> str:
        script = ""
        for family in self.families:
            items = self.nft.list("table", family, self.table) or []
            for item in items:
                rule = item.get("rule")
                if isinstance(rule, dict) and rule.get("comment") in tags:
                    script += (f"delete rule {family} {self.table} {rule['chain']} "
                               f"handle {rule['handle']}\n")
        return script

    def owners(self) -> set[str]:
        """Container ids with published-port rules: what a restarted daemon reconciles."""
        found = set()
        for family in self.families:
            items = self.nft.list("chain", family, self.table, "publish") or []
            for item in items:
                rule = item.get("rule")
                comment = rule.get("comment") if isinstance(rule, dict) else None
                if isinstance(comment, str) and comment.startswith("ctr:"):
                    found.add(comment[4:])
        return found
