"""`import` of a rootfs tarball (with Dockerfile `--change` lines) and `export` of a
container's filesystem. The expected configs and error messages are what Debian's dockerd
20.10 answered for the same `docker import --change` lines."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path
from typing import Any

import pytest

from sampan.images import (
    ChangeError,
    ImageError,
    ImageStore,
    InvalidReference,
    apply_changes,
    export_container,
    import_image,
)
from sampan.oci.decode import encode

from ..archive.hostile import HOSTILE, hostile_layer
from .conftest import busybox_rootfs_tar, container_rootfs, load_fixture, state

CHANGES: list[tuple[list[str], dict[str, Any]]] = [
    (['CMD echo $HOME "a b"', 'ENTRYPOINT ["/bin/sh", "-c"]', 'ENV A=1 B="two words" C=$A',
      "ENV D ${A}x y", "WORKDIR rel", "WORKDIR $A/sub", "USER app:$A",
      "EXPOSE 80 90/udp 8000-8002", 'VOLUME ["/data", "/logs"]', "VOLUME /a /b",
      'LABEL "k 1"="v 1" k2=v2', "ONBUILD run echo hi"],
     {"User": "app:1", "ExposedPorts": {"80/tcp": {}, "8000/tcp": {}, "8001/tcp": {},
                                        "8002/tcp": {}, "90/udp": {}},
      "Env": ["A=1", "B=two words", "C=", "D=1x y"],
      "Cmd": ["/bin/sh", "-c", 'echo $HOME "a b"'],
      "Volumes": {"/a": {}, "/b": {}, "/data": {}, "/logs": {}}, "WorkingDir": "/rel/1/sub",
      "Entrypoint": ["/bin/sh", "-c"], "OnBuild": ["run echo hi"],
      "Labels": {"k 1": "v 1", "k2": "v2"}}),
    (["ENV A=1", "ENV B=${A:-def} C=${Z:-def} E=${A:+alt} F=${Z:+alt} G=$A$A H=\\$A I=${A}"],
     {"Env": ["A=1", "B=1", "C=def", "E=alt", "F=", "G=11", "H=$A", "I=1"]}),
    (["ENV A='single $quoted' B=\"dq \\\"x\\\" \\$A\" C=a\\ b"],
     {"Env": ["A=single $quoted", 'B=dq "x" $A', "C=a b"]}),
    (["ENV A=1 A=2"], {"Env": ["A=2"]}),
    (["ENV A=1", "ENV B=2", "ENV A=3"], {"Env": ["A=3", "B=2"]}),
    (['ENV D "quoted value" x'], {"Env": ["D=quoted value x"]}),
    (["LABEL a b c"], {"Labels": {"a": "b c"}}),
    (["ENTRYPOINT x"], {"Entrypoint": ["/bin/sh", "-c", "x"]}),
    (["CMD y", "ENTRYPOINT x"], {"Cmd": ["/bin/sh", "-c", "y"],
                                 "Entrypoint": ["/bin/sh", "-c", "x"]}),
    (["CMD"], {"Cmd": ["/bin/sh", "-c"]}),
    (["CMD []"], {"Cmd": []}),
    (['CMD ["a" "b"]'], {"Cmd": ["/bin/sh", "-c", '["a" "b"]']}),
    (['cmd [ "a" ,  "b"]  '], {"Cmd": ["a", "b"]}),
    (["ONBUILD   RUN   echo x  "], {"OnBuild": ["RUN   echo x  "]}),
    (["EXPOSE 1.2.3.4:80:81", "expose 53/UDP"], {"ExposedPorts": {"81/tcp": {},
                                                                  "53/udp": {}}}),
    (["EXPOSE $P"], {}),
    (["WORKDIR /x//y", "WORKDIR z"], {"WorkingDir": "/x/y/z"}),
    (["WORKDIR /a//b/."], {"WorkingDir": "/a//b/."}),
    (["ENV A=1 \\"], {"Env": ["A=1"]}),
    (["# a comment", "ENV X=1"], {"Env": ["X=1"]}),
    (['HEALTHCHECK --interval=1m30s --retries=2 CMD ["wget", "x"]'],
     {"Healthcheck": {"Test": ["CMD", "wget", "x"], "Interval": 90_000_000_000,
                      "Retries": 2}}),
    (["HEALTHCHECK --timeout=5s --start-period=2s CMD test -r x || exit 1"],
     {"Healthcheck": {"Test": ["CMD-SHELL", "test -r x || exit 1"], "Timeout": 5_000_000_000,
                      "StartPeriod": 2_000_000_000}}),
    (["HEALTHCHECK NONE"], {"Healthcheck": {"Test": ["NONE"]}}),
    # Docker 20.10 refuses STOPSIGNAL as a change; later Dockers (and sampan) take it.
    (["STOPSIGNAL SIGUSR1"], {"StopSignal": "SIGUSR1"}),
    (["STOPSIGNAL 9"], {"StopSignal": "9"}),
]

REFUSED = [
    ("RUN true", "run is not a valid change command"),
    ("FROM x", "from is not a valid change command"),
    ("ENV", "ENV requires at least one argument"),
    ("ENV A", "ENV must have two arguments"),
    ("ENV A=1 B", 'Syntax error - can\'t find = in "B". Must be of the form: name=value'),
    ("LABEL", "LABEL requires at least one argument"),
    ("EXPOSE abc", "Invalid containerPort: abc"),
    ("EXPOSE 80/xyz", "Invalid proto: xyz"),
    ("EXPOSE 70000", "Invalid containerPort: 70000"),
    ("EXPOSE 80-79", "Invalid containerPort: 80-79"),
    ("VOLUME", "VOLUME requires at least one argument"),
    ("VOLUME []", "VOLUME requires at least one argument"),
    ('VOLUME [""]', "VOLUME specified can not be an empty string"),
    ('VOLUME /a "/b c"', "unexpected end of statement while looking for matching double-quote"),
    ("USER", "USER requires exactly one argument"),
    ("WORKDIR", "WORKDIR requires exactly one argument"),
    ("ONBUILD ONBUILD RUN x", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
    ("ONBUILD FROM x", "FROM isn't allowed as an ONBUILD trigger"),
    ("ONBUILD MAINTAINER x", "MAINTAINER isn't allowed as an ONBUILD trigger"),
    ('CMD ["a", 1]', "when using JSON array syntax, arrays must be comprised of strings only"),
    ("HEALTHCHECK --bogus=1 CMD x", "Unknown flag: bogus"),
    ("HEALTHCHECK", "HEALTHCHECK requires at least one argument"),
    ("HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD"),
    ("HEALTHCHECK CMD []", "Missing command after HEALTHCHECK CMD"),
    ("HEALTHCHECK --interval=0s CMD x", 'Interval "interval" cannot be less than 1ms'),
    ("HEALTHCHECK --retries=-1 CMD x", "--retries must be at least 1 (not -1)"),
    ("HEALTHCHECK --interval=abc CMD x", 'time: invalid duration "abc"'),
    ("HEALTHCHECK FOO x", 'Unknown type "FOO" in HEALTHCHECK (try CMD)'),
    ("STOPSIGNAL SIGNOPE", "Invalid signal: SIGNOPE"),
]


@pytest.mark.parametrize(("changes", "expected"), CHANGES, ids=range(len(CHANGES)))
def test_changes_as_docker_applies_them(changes: list[str], expected: dict[str, Any]) -> None:
    got = {k: v for k, v in encode(apply_changes(None, changes)).items() if v != ""}
    assert got == expected


@pytest.mark.parametrize(("change", "message"), REFUSED, ids=[c for c, _ in REFUSED])
def test_changes_docker_refuses(change: str, message: str) -> None:
    with pytest.raises(ChangeError) as err:
        apply_changes(None, ["ENV KEEP=1", change])
    assert message in str(err.value)


@pytest.mark.parametrize("compress", ["bz2", "lzma"])
def test_import_takes_bzip2_and_xz_as_docker_does(store: ImageStore, compress: str) -> None:
    import bz2
    import lzma

    plain = busybox_rootfs_tar()
    packed = bz2.compress(plain) if compress == "bz2" else lzma.compress(plain)
    image = import_image(store, io.BytesIO(packed), f"imported/{compress}:v1")
    # The layer is the decompressed tarball, as for every other compression.
    assert store.inspect(image.id)["RootFS"]["Layers"] == \
        [f"sha256:{hashlib.sha256(plain).hexdigest()}"]
    with pytest.raises(ImageError, match=r"truncated|corrupt"):
        import_image(store, io.BytesIO(packed[:len(packed) // 2]), "imported/cut:v1")


def test_import_a_gzipped_rootfs_with_changes(store: ImageStore, tmp_path: Path) -> None:
    plain = busybox_rootfs_tar()
    image = import_image(store, io.BytesIO(gzip.compress(plain)), "imported/bb:v1",
                         changes=['CMD ["sh", "-c", "echo hi"]', "ENV GREETING=hi",
                                  "WORKDIR /srv", "USER nobody", "EXPOSE 8080",
                                  "VOLUME /data", "LABEL team=core", "STOPSIGNAL SIGINT"])
    info = store.inspect("imported/bb:v1")
    assert info["Id"] == image.id and info["RepoTags"] == ["imported/bb:v1"]
    assert info["Comment"] == "Imported from -" and info["Parent"] == ""
    assert info["RootFS"] == {"Type": "layers",
                              "Layers": [f"sha256:{hashlib.sha256(plain).hexdigest()}"]}
    config = info["Config"]
    assert (config["Cmd"], config["Env"], config["WorkingDir"], config["User"]) == \
        (["sh", "-c", "echo hi"], ["GREETING=hi"], "/srv", "nobody")
    assert (config["ExposedPorts"], config["Volumes"], config["Labels"], config["StopSignal"]) \
        == ({"8080/tcp": {}}, {"/data": {}}, {"team": "core"}, "SIGINT")
    assert config["Hostname"] == "" and config["Entrypoint"] is None  # Docker's full form
    [entry] = store.history("imported/bb:v1")
    assert (entry["Comment"], entry["CreatedBy"], entry["Size"]) == \
        ("Imported from -", "", info["Size"])
    assert info["Size"] > 1_900_000
    with container_rootfs(store, "imported/bb:v1", tmp_path) as root:
        assert os.readlink(root / "bin/sh") == "/bin/busybox"
        assert stat.S_IMODE((root / "tmp").stat().st_mode) == 0o1777
    # A message replaces the comment; the same tarball again shares the layer.
    again = import_image(store, io.BytesIO(plain), message="second", platform="linux/arm64")
    assert store.inspect(again.id)["Comment"] == "second"
    assert store.inspect(again.id)["Architecture"] == "arm64"
    assert again.layers[0].chain_id == image.layers[0].chain_id
    assert store.list_images({"dangling": ["true"]})[0]["Id"] == again.id


def test_failed_imports_leave_the_store_unchanged(store: ImageStore, tmp_path: Path) -> None:
    load_fixture(store, "busybox.docker.tar")
    before = state(store)
    plain = busybox_rootfs_tar()
    with pytest.raises(ImageError, match="invalid tarball: truncated gzip stream"):
        packed = gzip.compress(plain)
        import_image(store, io.BytesIO(packed[:len(packed) // 2]), "broken")
    with pytest.raises(ImageError, match="corrupt bzip2 stream"):
        import_image(store, io.BytesIO(b"BZh91AY&SY" + b"\0" * 64), "broken")
    with pytest.raises(ImageError, match="bogus is not a valid change command"):
        import_image(store, io.BytesIO(plain), "broken", changes=["BOGUS 1"])
    with pytest.raises(InvalidReference, match="must be lowercase"):
        import_image(store, io.BytesIO(plain), "Broken")
    with pytest.raises(ImageError, match=r"layer 0 .*'../escaped': path leads outside"):
        import_image(store, io.BytesIO(hostile_layer(HOSTILE["dotdot"][0], tmp_path)),
                     "broken")
    assert state(store) == before
    assert not (tmp_path.parent / "escaped").exists()


def _entries(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar}


@pytest.mark.parametrize("snapshotter", ["overlayfs", "native"])
def test_export_of_a_container(tmp_path: Path, snapshotter: str) -> None:
    store = ImageStore(str(tmp_path / "store"), snapshotter=snapshotter)
    try:
        load_fixture(store, "layers.docker.tar")
        with container_rootfs(store, "layers", tmp_path) as root:
            (root / "tmp/written").write_text("by the container")
            os.unlink(root / "fixture/whiteout/kept.txt")
            key = next(i.key for i in store.snapshots.walk() if i.kind == "active")
            out = io.BytesIO()
            digest, size = export_container(store, key, out)  # while it is mounted
            seen = {str(p.relative_to(root)) for p in root.rglob("*")}
        data = out.getvalue()
        assert size == len(data) and digest.startswith("sha256:")
        entries = _entries(data)
        assert set(entries) == seen  # exactly what the container saw
        assert not any(os.path.basename(n).startswith(".wh.") for n in entries)
        assert "bin/vi" not in entries and "fixture/whiteout/kept.txt" not in entries
        assert entries["tmp/written"].size == len("by the container")
        assert entries["fixture/modes/setuid-file"].mode == 0o4755
        owned = entries["fixture/modes/owned-by-4242"]
        assert (owned.uid, owned.gid) == (4242, 4343)
        assert entries["fixture/modes/chardev-1-3"].ischr()
        hard = [entries[n] for n in ("fixture/links/hard-b", "fixture/links-other/hard-c")]
        assert all(h.islnk() and h.linkname == "fixture/links/hard-a" for h in hard)
        caps = entries["fixture/caps/net-caps"].pax_headers
        assert caps["SCHILY.xattr.security.capability"].encode("utf-8", "surrogateescape") \
            .hex() == "0100000200240000000000000000000000000000"
        assert [i.kind for i in store.snapshots.walk()].count("active") == 0
        # The export imports back as a one-layer image with the same tree.
        image = import_image(store, io.BytesIO(data), "flattened")
        assert len(image.layers) == 1
        with container_rootfs(store, "flattened", tmp_path) as root:
            assert (root / "tmp/written").read_text() == "by the container"
            assert not (root / "fixture/whiteout/kept.txt").exists()
            assert (root / "fixture/links/hard-b").stat().st_ino == \
                (root / "fixture/links/hard-a").stat().st_ino
            assert os.getxattr(root / "fixture/caps/net-caps", "security.capability").hex() \
                == "0100000200240000000000000000000000000000"
            assert {str(p.relative_to(root)) for p in root.rglob("*")} == seen
    finally:
        store.close()
