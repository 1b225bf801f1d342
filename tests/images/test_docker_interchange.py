"""sampan beside a real dockerd (Debian's docker.io 20.10, started by this module on its own
socket and directories, no bridge, no iptables): `docker load` runs what sampan saves and
inspects and lists its history as sampan does; sampan's `import` gives the image `docker
import` gives; sampan's `export` writes what `docker export` writes."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sampan.images import ImageStore, export_container, import_image, save

from .conftest import FIXTURES, busybox_rootfs_tar, load_fixture
from .dockerd import private_dockerd

pytestmark = pytest.mark.peers

LAYERS_OUTPUT = ("layers: entrypoint=ran user=app uid=1000 gid=1000 groups=1000 50 "
                 "cwd=/home/app/work greeting=hello world")


@pytest.fixture(scope="module")
def docker() -> Iterator[list[str]]:
    work = tempfile.mkdtemp(prefix="sampan-dockerd-")
    try:
        with private_dockerd(work) as client:
            yield client
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_docker_loads_and_runs_what_sampan_saves(docker: list[str], store: ImageStore,
                                                 index: dict[str, Any],
                                                 tmp_path: Path) -> None:
    load_fixture(store, "layers.docker.tar")
    store.tag("layers", "sampan-saved/layers:v1")
    archive = tmp_path / "saved.tar"
    with open(archive, "wb") as out:
        save(store, ["sampan-saved/layers:v1"], out)
    loaded = subprocess.run([*docker, "load", "-i", str(archive)], check=True,
                            capture_output=True, text=True).stdout
    assert loaded.strip() == "Loaded image: sampan-saved/layers:v1"
    [info] = json.loads(subprocess.run([*docker, "image", "inspect", "sampan-saved/layers:v1"],
                                       check=True, capture_output=True, text=True).stdout)
    assert info["Id"] == index["layers"]["image_id"]
    assert info["RootFS"]["Layers"] == [la["diff_id"] for la in index["layers"]["layers"]]
    ours = store.inspect("sampan-saved/layers:v1")  # inspect answers as Docker's does
    assert set(ours) == set(info)
    assert ours["RepoTags"] == ["layers:latest", "sampan-saved/layers:v1"]
    for key in ("Id", "RepoDigests", "Parent", "Comment", "Created", "Container",
                "ContainerConfig", "DockerVersion", "Author", "Config", "Architecture", "Os",
                "Size", "VirtualSize", "RootFS"):
        assert ours[key] == info[key], key
    history = subprocess.run([*docker, "history", "--no-trunc", "--human=false", "--format",
                              "{{.ID}}|{{.CreatedBy}}|{{.Size}}|{{.Comment}}",
                              "sampan-saved/layers:v1"], check=True, capture_output=True,
                             text=True).stdout.splitlines()
    assert history == [f"{h['Id']}|{h['CreatedBy']}|{h['Size']}|{h['Comment']}"
                       for h in store.history("sampan-saved/layers:v1")]
    run = subprocess.run([*docker, "run", "--rm", "--network", "none",
                          "sampan-saved/layers:v1"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == LAYERS_OUTPUT
    subprocess.run([*docker, "rmi", "sampan-saved/layers:v1"], check=True, capture_output=True)


IMPORT_CHANGES = ['CMD ["sh", "-c", "echo $GREETING"]', "ENTRYPOINT /bin/env", "ENV A=1 B=$A",
                  'ENV GREETING "hello world"', "WORKDIR srv", "WORKDIR $A/sub", "USER nobody",
                  "EXPOSE 8080 53/udp 9000-9002", 'VOLUME ["/data"]', "VOLUME /logs",
                  'LABEL "with space"=yes team=core', "ONBUILD RUN echo triggered",
                  "HEALTHCHECK --interval=5s --retries=3 CMD wget -q -O /dev/null http://x/"]


def _inspect(docker: list[str], name: str) -> dict[str, Any]:
    [info] = json.loads(subprocess.run([*docker, "image", "inspect", name], check=True,
                                       capture_output=True, text=True).stdout)
    return info  # type: ignore[no-any-return]


def test_import_gives_the_image_docker_import_gives(docker: list[str], store: ImageStore,
                                                    tmp_path: Path) -> None:
    tarball = tmp_path / "rootfs.tar"
    tarball.write_bytes(busybox_rootfs_tar())
    args = [arg for change in IMPORT_CHANGES for arg in ("-c", change)]
    subprocess.run([*docker, "import", *args, str(tarball), "imported:v1"], check=True,
                   capture_output=True)
    with open(tarball, "rb") as f:
        import_image(store, f, "imported:v1", changes=IMPORT_CHANGES)
    theirs, ours = _inspect(docker, "imported:v1"), store.inspect("imported:v1")
    assert set(ours) == set(theirs)  # docker's field set, no more, no less
    for key in ("Config", "ContainerConfig", "Comment", "RootFS", "Architecture", "Os",
                "Size", "RepoTags", "RepoDigests", "Parent", "Author"):
        assert ours[key] == theirs[key], key
    history = subprocess.run([*docker, "history", "--no-trunc", "--human=false", "--format",
                              "{{.CreatedBy}}|{{.Comment}}|{{.Size}}", "imported:v1"],
                             check=True, capture_output=True, text=True).stdout.splitlines()
    [entry] = store.history("imported:v1")
    assert history == [f"{entry['CreatedBy']}|{entry['Comment']}|{entry['Size']}"]
    subprocess.run([*docker, "rmi", "imported:v1"], check=True, capture_output=True)


# What Docker's init layer adds to every container, and the directories it touches.
_INIT_LAYER = {".dockerenv", "dev/console", "dev/pts", "dev/shm", "etc/hostname", "etc/hosts",
               "etc/mtab", "etc/resolv.conf", "proc", "sys"}
_INIT_TOUCHED = {"dev", "etc"}


def _export_entries(data: bytes) -> dict[str, tuple[Any, ...]]:
    """Each entry of an export as both tools should agree on it (owner names and the PAX
    spelling of long names are left out: Docker looks names up, sampan writes numbers)."""
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for m in tar:
            xattrs = sorted((k, v) for k, v in m.pax_headers.items() if "xattr" in k)
            out[m.name.rstrip("/")] = (m.type, m.mode & 0o7777, m.uid, m.gid, m.size,
                                       m.linkname, m.mtime, m.devmajor, m.devminor, xattrs)
    return out


def test_export_is_what_docker_export_writes(docker: list[str], store: ImageStore) -> None:
    load_fixture(store, "layers.docker.tar")
    subprocess.run([*docker, "load", "-i", str(FIXTURES / "layers.docker.tar")], check=True,
                   capture_output=True)
    cid = subprocess.run([*docker, "create", "--network", "none", "layers"], check=True,
                         capture_output=True, text=True).stdout.strip()
    try:
        theirs = _export_entries(subprocess.run([*docker, "export", cid], check=True,
                                                capture_output=True).stdout)
    finally:
        subprocess.run([*docker, "rm", cid], check=True, capture_output=True)
    store.prepare_rootfs("exported", "layers")
    out = io.BytesIO()
    export_container(store, "exported", out)
    store.snapshots.remove("exported")
    ours = _export_entries(out.getvalue())
    assert set(theirs) - set(ours) == _INIT_LAYER
    assert set(ours) <= set(theirs)
    differ = {name for name in ours if ours[name] != theirs[name]}
    assert differ == _INIT_TOUCHED
    for name in differ:  # only their mtime
        assert ours[name][:6] == theirs[name][:6]
    assert len(ours) > 300
