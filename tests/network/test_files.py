"""The /etc files of a container, compared with what dockerd writes."""

from __future__ import annotations

import pytest

from sampan.network import files
from sampan.network.files import HostEntry

HOST_RESOLV = """# generated
nameserver 127.0.0.53
nameserver 10.0.0.2 ; comment
search corp.example example.com
options edns0 trust-ad
"""


def test_hostname() -> None:
    assert files.hostname_file("abc123") == "abc123\n"


def test_hosts() -> None:
    text = files.hosts_file(
        "web.corp", ["172.30.0.2"], [HostEntry.parse("db:10.0.0.5")], aliases=["w"]
    )
    assert text.startswith("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
    assert text.endswith("10.0.0.5\tdb\n172.30.0.2\tweb.corp web w\n")
    assert files.hosts_file("abc").count("abc") == 0  # no network address: no own line


def test_add_host_parse() -> None:
    assert HostEntry.parse("h:[::1]") == HostEntry("h", "::1")
    with pytest.raises(ValueError):
        HostEntry.parse("noaddress")


def test_resolv_drops_loopback_and_keeps_the_rest() -> None:
    assert files.resolv_file(HOST_RESOLV) == (
        "nameserver 10.0.0.2\nsearch corp.example example.com\noptions edns0 trust-ad\n"
    )


def test_resolv_overrides() -> None:
    text = files.resolv_file(HOST_RESOLV, ["1.1.1.1"], ["a.example"], ["ndots:2"])
    assert text == "nameserver 1.1.1.1\nsearch a.example\noptions ndots:2\n"
    assert "search" not in files.resolv_file(HOST_RESOLV, dns_search=["."])


def test_resolv_fallback_and_embedded() -> None:
    assert files.resolv_file("nameserver 127.0.0.1\n") == (
        "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
    )
    embedded = files.resolv_file(HOST_RESOLV, embedded_dns=True)
    assert embedded.startswith("nameserver 127.0.0.11\n")
    assert embedded.endswith("options edns0 trust-ad ndots:0\n")
    assert files.upstream_nameservers(HOST_RESOLV) == ["127.0.0.53", "10.0.0.2"]
    assert files.upstream_nameservers(HOST_RESOLV, ["9.9.9.9"]) == ["9.9.9.9"]
