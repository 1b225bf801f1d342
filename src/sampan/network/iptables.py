"""NAT and filtering for bridge networks in iptables chains of sampan's own (the iptables
backend of ``firewall``, for hosts without nftables or when asked for).

The rules are the nftables backend's (see ``firewall``), written with Debian's
``iptables``/``ip6tables`` (iptables-nft or iptables-legacy, whichever it is) into
chains named ``SAMPAN-<role>[-<bridge>]``; the built-in chains get one jump each, and
nothing else of anyone's is read for more than finding those jumps. Changes go through
``iptables-restore --noflush`` in one batch per table, and every rule carries a comment
naming its owner, so removal deletes exactly those rules, also after a restart.

Chains, per address family: nat ``PUB`` (DNAT of published ports, jumped to for local
destinations from PREROUTING and OUTPUT; IPv6's OUTPUT jump skips ``::1``, the proxy's)
and ``POST`` (masquerade, from POSTROUTING); filter ``FWD`` (from FORWARD: DNATed
connections pass, --internal networks forward nothing in or out, and a bridge's packets
to another sampan bridge go to ``ISO``, which drops them); raw ``GUARD`` (IPv4: packets
to 127.0.0.0/8 arriving from a bridge are dropped, closing what route_localnet opens).
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from sampan.network import sysctl
from sampan.network.errors import NetworkError
from sampan.network.ports import ANY, ANY6, PortBinding

ROLES = {"nat": ("PUB", "POST"), "filter": ("FWD", "ISO"), "raw": ("GUARD",)}


@dataclass(frozen=True)
class Tables:
    """One family's commands: ``iptables`` or ``ip6tables`` with -save and -restore."""

    binary: str = "iptables"

    def save(self, table: str) -> list[str]:
        """The table's ``-S``-style lines (``:CHAIN`` and ``-A`` ones); empty if absent."""
        try:
            proc = subprocess.run([f"{self.binary}-save", "-t", table], capture_output=True,
                                  text=True, check=False)
        except FileNotFoundError:
            return []
        return [line for line in proc.stdout.splitlines() if line[:1] in (":", "-")]

    def restore(self, table: str, lines: list[str]) -> None:
        """Apply ``lines`` (``-A``/``-D``/``-I``/``-N``/``-F``/``-X``) atomically."""
        if not lines:
            return
        script = f"*{table}\n" + "\n".join(lines) + "\nCOMMIT\n"
        try:
            proc = subprocess.run([f"{self.binary}-restore", "--noflush", "-w"], input=script,
                                  capture_output=True, text=True, check=False)
        except FileNotFoundError:
            raise NetworkError(f"{self.binary}-restore is not installed") from None
        if proc.returncode != 0:
            raise NetworkError(f"{self.binary}-restore failed: {proc.stderr.strip()}\n{script}")


    def drop_if_empty(self, table: str) -> None:
        """iptables-nft makes the nftables table (``ip nat`` …) on first use and leaves it:
        delete it when nothing is in it (no rule, no chain of anyone's, every policy
        ACCEPT), so sampan's rules leave no trace. iptables-legacy's tables are not
        objects one can remove."""
        lines = self.save(table)
        if not lines or any(not (line.startswith(":") and line.split()[1] == "ACCEPT")
                            for line in lines):
            return
        if "nf_tables" not in self.version():
            return
        family = "ip6" if self.binary.startswith("ip6") else "ip"
        with suppress(FileNotFoundError):  # no nft: the empty table stays
            subprocess.run(["nft", "delete", "table", family, table], capture_output=True,
                           check=False)

    def version(self) -> str:
        try:
            return subprocess.run([self.binary, "-V"], capture_output=True, text=True,
                                  check=False).stdout
        except FileNotFoundError:
            return ""


def _comment(tag: str) -> str:
    return f"-m comment --comment {tag}"


def _tag_of(line: str) -> str:
    words = shlex.split(line)
    for i, word in enumerate(words[:-1]):
        if word == "--comment":
            return words[i + 1]
    return ""


class Iptables:
    """sampan's iptables chains: masquerade, isolation and published ports."""

    name = "iptables"

    def __init__(self, suffix: str = "") -> None:
        self.suffix = f"-{suffix}" if suffix else ""
        self.v4 = Tables("iptables")
        self.v6 = Tables("ip6tables")
        self.families = [self.v4, self.v6] if os.path.isdir("/proc/sys/net/ipv6") \
            else [self.v4]

    def chain(self, role: str) -> str:
        return f"SAMPAN-{role}{self.suffix}"

    def _tables(self, family: Tables) -> dict[str, tuple[str, ...]]:
        return {t: r for t, r in ROLES.items() if t != "raw" or family is self.v4}

    def _jumps(self, family: Tables) -> dict[str, list[str]]:
        """Built-in chain → the rule (without ``-A chain``) jumping to ours."""
        local = "-m addrtype --dst-type LOCAL"
        skip = "! -d ::1/128 " if family is self.v6 else ""
        out = {
            "nat": [f"PREROUTING {local} -j {self.chain('PUB')}",
                    f"OUTPUT {skip}{local} -j {self.chain('PUB')}",
                    f"POSTROUTING -j {self.chain('POST')}"],
            "filter": [f"FORWARD -j {self.chain('FWD')}"],
        }
        if family is self.v4:
            out["raw"] = [f"PREROUTING -j {self.chain('GUARD')}"]
        return out

    # Set-up and tear-down -----------------------------------------------------------------

    def setup(self) -> None:
        """Create the chains and jumps unless they are there (idempotent)."""
        for family in self.families:
            for table, roles in self._tables(family).items():
                lines = family.save(table)
                have = {line.split()[0][1:] for line in lines if line.startswith(":")}
                script = [f"-N {self.chain(r)}" for r in roles if self.chain(r) not in have]
                if table == "filter" and self.chain("FWD") not in have:
                    script.append(f"-A {self.chain('FWD')} -m conntrack --ctstate DNAT "
                                  "-j ACCEPT")
                for jump in self._jumps(family)[table]:
                    builtin, _, rest = jump.partition(" ")
                    target = rest.rpartition(" ")[2]
                    if not any(line.startswith(f"-A {builtin} ") and line.endswith(f" {target}")
                               for line in lines):
                        script.append(f"-I {builtin} 1 {rest}")
                family.restore(table, script)

    def teardown(self) -> None:
        """Remove the jumps and the chains with everything in them (absent is no error)."""
        for family in self.families:
            for table, roles in self._tables(family).items():
                lines = family.save(table)
                have = {line.split()[0][1:] for line in lines if line.startswith(":")}
                ours = {self.chain(r) for r in roles}
                script = [f"-D {line[3:]}" for line in lines if line.startswith("-A ")
                          and line.split()[1] not in ours
                          and any(line.endswith(f"-j {c}") for c in ours)]
                script += [f"-F {c}" for c in ours if c in have]
                script += [f"-X {c}" for c in ours if c in have]
                family.restore(table, script)
                family.drop_if_empty(table)

    # Networks -----------------------------------------------------------------------------

    def add_network(self, bridge: str, subnet: IPv4Network, internal: bool = False,
                    subnet6: IPv6Network | None = None) -> None:
        """As the nftables backend's (see ``firewall``); idempotent."""
        self.remove_network(bridge)
        sysctl.write(f"net.ipv4.conf.{bridge}.route_localnet", "1")
        tag = _comment(f"net:{bridge}")
        self._network(self.v4, bridge, str(subnet), internal)
        self.v4.restore("nat", [
            f"-A {self.chain('POST')} -s 127.0.0.0/8 -o {bridge} {tag} -j MASQUERADE"])
        self.v4.restore("raw", [
            f"-A {self.chain('GUARD')} -i {bridge} -d 127.0.0.0/8 {tag} -j DROP"])
        if subnet6 is not None and self.v6 in self.families:
            self._network(self.v6, bridge, str(subnet6), internal)

    def _network(self, family: Tables, bridge: str, subnet: str, internal: bool) -> None:
        tag = _comment(f"net:{bridge}")
        fwd, iso, post = self.chain("FWD"), self.chain("ISO"), self.chain("POST")
        nat = [f"-A {post} -s {subnet} -o {bridge} -m conntrack --ctstate DNAT {tag} "
               "-j MASQUERADE"]
        if internal:
            rules = [f"-A {fwd} -i {bridge} ! -o {bridge} {tag} -j DROP",
                     f"-A {fwd} -o {bridge} ! -i {bridge} {tag} -j DROP"]
        else:
            nat.append(f"-A {post} -s {subnet} ! -o {bridge} {tag} -j MASQUERADE")
            rules = [f"-A {fwd} -i {bridge} ! -o {bridge} {tag} -j {iso}"]
        rules.append(f"-A {iso} -o {bridge} {tag} -j DROP")
        family.restore("filter", rules)
        family.restore("nat", nat)

    def remove_network(self, bridge: str) -> None:
        """Drop a network's rules."""
        self._delete_tagged(f"net:{bridge}", ROLES)

    # Published ports ----------------------------------------------------------------------

    def publish(self, owner: str, address: IPv4Address, bindings: Iterable[PortBinding],
                address6: IPv6Address | None = None) -> None:
        """DNAT each binding's host port to ``address`` (IPv6 ones to ``address6``, but
        for ``::1``: the proxy's)."""
        tag = _comment(f"ctr:{owner}")
        pub = self.chain("PUB")
        v4: list[str] = []
        v6: list[str] = []
        for b in bindings:
            if b.host_port == 0:
                raise NetworkError(f"binding {b} has no host port yet")
            if b.v6:
                if address6 is None or b.host_ip == "::1" or self.v6 not in self.families:
                    continue
                match = "" if b.host_ip == ANY6 else f"-d {b.host_ip}/128 "
                v6.append(f"-A {pub} {match}-p {b.proto} -m {b.proto} --dport {b.host_port} "
                          f"{tag} -j DNAT --to-destination [{address6}]:{b.container_port}")
                continue
            match = "" if b.host_ip == ANY else f"-d {b.host_ip}/32 "
            v4.append(f"-A {pub} {match}-p {b.proto} -m {b.proto} --dport {b.host_port} {tag} "
                      f"-j DNAT --to-destination {address}:{b.container_port}")
        self.v4.restore("nat", v4)
        self.v6.restore("nat", v6)

    def unpublish(self, owner: str) -> None:
        self._delete_tagged(f"ctr:{owner}", {"nat": ("PUB",)})

    def owners(self) -> set[str]:
        found = set()
        for family in self.families:
            for line in family.save("nat"):
                if line.startswith(f"-A {self.chain('PUB')} "):
                    tag = _tag_of(line)
                    if tag.startswith("ctr:"):
                        found.add(tag[4:])
        return found

    def _delete_tagged(self, tag: str, roles: dict[str, tuple[str, ...]]) -> None:
        for family in self.families:
            for table, names in roles.items():
                if table not in self._tables(family):
                    continue
                ours = {self.chain(r) for r in names}
                doomed = [f"-D {line[3:]}" for line in family.save(table)
                          if line.startswith("-A ") and line.split()[1] in ours
                          and _tag_of(line) == tag]
                family.restore(table, doomed)
