"""NAT and filtering for bridge networks, in an nftables table of sampan's own.

Everything lives in ``table ip <name>``: removing sampan is deleting one table, and no
other program's rules are read or rewritten. Every rule sampan adds for a network or a
container carries a comment naming it (``net:<bridge>``, ``ctr:<id>``), so removal
finds exactly those rules by handle, also after a daemon restart.

Localhost access to published ports is done in the kernel, not by a proxy process:
DNAT in the output hook, ``route_localnet`` on the bridge so the kernel routes a packet
from 127.0.0.1 out of it, and masquerade of 127.0.0.0/8 towards the bridge so the
container answers the gateway. It costs no process or copy per port, works for UDP as
for TCP, and keeps one code path; the risk route_localnet brings (a container sending
to the host's 127.0.0.1 through the bridge) is closed by a raw-priority rule dropping
packets to 127.0.0.0/8 that arrive from any sampan bridge.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from sampan.network import sysctl
from sampan.network.errors import NetworkError
from sampan.network.ports import ANY, PortBinding

DEFAULT_TABLE = "sampan"


def _comment(kind: str, name: str) -> str:
    return f"{kind}:{name}"


@dataclass(frozen=True)
class Nft:
    """The ``nft`` command: scripts through stdin, listings as JSON."""

    binary: str = "nft"

    def run(self, script: str) -> None:
        proc = subprocess.run(
            [self.binary, "-f", "-"], input=script, capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise NetworkError(f"nft failed: {proc.stderr.strip()}\n{script}")

    def list(self, *what: str) -> list[dict[str, object]] | None:
        """``nft -j list <what>`` items, or None when the object does not exist."""
        proc = subprocess.run(
            [self.binary, "-j", "list", *what], capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            if "No such file or directory" in proc.stderr:
                return None
            raise NetworkError(f"nft list {' '.join(what)} failed: {proc.stderr.strip()}")
        items: list[dict[str, object]] = json.loads(proc.stdout)["nftables"]
        return items


class Nat:
    """sampan's nftables table: masquerade, isolation, and published ports."""

    def __init__(self, table: str = DEFAULT_TABLE, nft: Nft | None = None) -> None:
        self.table = table
        self.nft = nft or Nft()

    def _rule(self, chain: str, body: str, comment: str) -> str:
        return f'add rule ip {self.table} {chain} {body} comment "{comment}"\n'

    def setup(self) -> None:
        """Create the table and its base chains unless they are there (idempotent)."""
        if self.nft.list("table", "ip", self.table) is not None:
            return
        t = self.table
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
            "  chain postrouting { type nat hook postrouting priority srcnat; policy accept; }\n"
            "  chain forward { type filter hook forward priority filter; policy accept;\n"
            "    ct status dnat accept; }\n"
            "}\n"
        )

    def teardown(self) -> None:
        """Delete the whole table; nothing sampan added stays (absent is no error)."""
        if self.nft.list("table", "ip", self.table) is not None:
            self.nft.run(f"delete table ip {self.table}\n")

    def add_network(self, bridge: str, subnet: IPv4Network, internal: bool = False) -> None:
        """Rules for one bridge network; removes its old rules first, so it is idempotent.

        Not internal: masquerade leaving through any other interface. Internal: nothing
        is forwarded in or out. Always: no forwarding to another sampan bridge, hairpin
        (a container reaching a published port of its own bridge through a host
        address), and localhost access to published ports.
        """
        self.remove_network(bridge)
        sysctl.write(f"net.ipv4.conf.{bridge}.route_localnet", "1")
        tag = _comment("net", bridge)
        script = f'add element ip {self.table} bridges {{ "{bridge}" }}\n'
        if internal:
            script += self._rule("forward", f'iifname "{bridge}" oifname != "{bridge}" drop', tag)
            script += self._rule("forward", f'oifname "{bridge}" iifname != "{bridge}" drop', tag)
        else:
            script += self._rule(
                "postrouting", f'ip saddr {subnet} oifname != "{bridge}" masquerade', tag
            )
        script += self._rule(
            "forward", f'iifname "{bridge}" oifname @bridges oifname != "{bridge}" drop', tag
        )
        script += self._rule(
            "postrouting", f'ip saddr {subnet} oifname "{bridge}" ct status dnat masquerade', tag
        )
        script += self._rule(
            "postrouting", f'ip saddr 127.0.0.0/8 oifname "{bridge}" masquerade', tag
        )
        self.nft.run(script)

    def remove_network(self, bridge: str) -> None:
        """Drop a network's rules and its place in the bridge set."""
        script = self._delete_tagged([_comment("net", bridge)])
        if self._has_element(bridge):
            script += f'delete element ip {self.table} bridges {{ "{bridge}" }}\n'
        if script:
            self.nft.run(script)

    def _has_element(self, bridge: str) -> bool:
        items = self.nft.list("set", "ip", self.table, "bridges") or []
        for item in items:
            body = item.get("set")
            if isinstance(body, dict) and bridge in (body.get("elem") or []):
                return True
        return False

    def publish(self, owner: str, address: IPv4Address, bindings: Iterable[PortBinding]) -> None:
        """DNAT each binding's host port to ``address``; the bindings' ports are final."""
        tag = _comment("ctr", owner)
        script = ""
        for b in bindings:
            if b.host_port == 0:
                raise NetworkError(f"binding {b} has no host port yet")
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
        items = self.nft.list("table", "ip", self.table) or []
        script = ""
        for item in items:
            rule = item.get("rule")
            if isinstance(rule, dict) and rule.get("comment") in tags:
                script += f"delete rule ip {self.table} {rule['chain']} handle {rule['handle']}\n"
        return script

    def owners(self) -> set[str]:
        """Container ids with published-port rules: what a restarted daemon reconciles."""
        items = self.nft.list("chain", "ip", self.table, "publish") or []
        found = set()
        for item in items:
            rule = item.get("rule")
            comment = rule.get("comment") if isinstance(rule, dict) else None
            if isinstance(comment, str) and comment.startswith("ctr:"):
                found.add(comment[4:])
        return found
