"""The content store: verified, atomic, resumable blob writes."""

from __future__ import annotations

import hashlib
import os
import stat
import threading

import pytest

from sampan.content import (
    BlobNotFound,
    ContentStore,
    DigestMismatch,
    IngestLocked,
    ShortBlob,
    SizeMismatch,
)
from sampan.oci.image import InvalidDigest

DATA = os.urandom(3 << 20) + b"tail"
DIGEST = "sha256:" + hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def store(tmp_path) -> ContentStore:
    return ContentStore(str(tmp_path / "content"))


def leftovers(store: ContentStore) -> list[str]:
    """Every file under the store except published blobs."""
    out = []
    for base, _, files in os.walk(store.root):
        if os.path.relpath(base, store.root).startswith("blobs"):
            continue
        out.extend(os.path.join(base, f) for f in files)
    return out


def test_ingest_verifies_and_publishes_read_only(store: ContentStore) -> None:
    chunks = [DATA[i:i + 65536] for i in range(0, len(DATA), 65536)]
    path = store.ingest(iter(chunks), DIGEST, len(DATA))
    assert path == store.path(DIGEST)
    assert store.has(DIGEST) and store.size(DIGEST) == len(DATA)
    with store.open(DIGEST) as f:
        assert f.read() == DATA
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o444
    assert list(store.walk()) == [(DIGEST, len(DATA))]
    assert leftovers(store) == []
    store.verify(DIGEST)


def test_sha512_digests(store: ContentStore) -> None:
    digest = "sha512:" + hashlib.sha512(b"hello").hexdigest()
    store.ingest([b"hello"], digest, 5)
    assert store.read(digest) == b"hello"
    assert store.path(digest).endswith("/blobs/sha512/" + digest[7:])


def test_digest_mismatch_leaves_nothing(store: ContentStore) -> None:
    wrong = "sha256:" + "0" * 64
    with pytest.raises(DigestMismatch, match="digest mismatch"):
        store.ingest([DATA], wrong, len(DATA))
    assert not store.has(wrong)
    assert list(store.walk()) == [] and leftovers(store) == []


def test_more_bytes_than_the_descriptor_says(store: ContentStore) -> None:
    with pytest.raises(SizeMismatch, match="more data than the expected 10 bytes"):
        store.ingest([DATA], DIGEST, 10)
    assert list(store.walk()) == [] and leftovers(store) == []


def test_interrupted_ingest_resumes(store: ContentStore) -> None:
    cut = 1_000_003
    with pytest.raises(ShortBlob, match=f"after {cut} of {len(DATA)} bytes"):
        store.ingest([DATA[:cut]], DIGEST, len(DATA))
    assert not store.has(DIGEST)
    assert store.ingest_offset(DIGEST) == cut
    store.ingest([DATA[cut:]], DIGEST, len(DATA))
    assert store.read(DIGEST) == DATA
    assert store.ingest_offset(DIGEST) == 0 and leftovers(store) == []


def test_resume_with_wrong_bytes_fails_and_discards_the_partial(store: ContentStore) -> None:
    with pytest.raises(ShortBlob):
        store.ingest([DATA[:100]], DIGEST, len(DATA))
    with pytest.raises(DigestMismatch):
        store.ingest([b"x" * (len(DATA) - 100)], DIGEST, len(DATA))
    assert store.ingest_offset(DIGEST) == 0 and leftovers(store) == []


def test_existing_blob_is_not_read_again(store: ContentStore) -> None:
    store.ingest([DATA], DIGEST, len(DATA))

    def explode():
        raise AssertionError("source read although the blob is stored")
        yield b""

    assert store.ingest(explode(), DIGEST, len(DATA)) == store.path(DIGEST)


def test_concurrent_ingest_of_one_digest_is_refused(store: ContentStore) -> None:
    started, release = threading.Event(), threading.Event()

    def slow():
        yield DATA[:10]
        started.set()
        release.wait(10)
        yield DATA[10:]

    worker = threading.Thread(target=store.ingest, args=(slow(), DIGEST, len(DATA)))
    worker.start()
    try:
        assert started.wait(10)
        with pytest.raises(IngestLocked, match="being written by another ingest"):
            store.ingest([DATA], DIGEST, len(DATA))
    finally:
        release.set()
        worker.join()
    assert store.read(DIGEST) == DATA


def test_writer_for_unknown_digests(store: ContentStore) -> None:
    with store.writer() as writer:
        writer.write(b"abc")
        writer.write(b"def")
        digest = writer.commit()
    assert digest == "sha256:" + hashlib.sha256(b"abcdef").hexdigest()
    assert store.read(digest) == b"abcdef"
    with store.writer() as writer:
        writer.write(b"zzz")
        with pytest.raises(DigestMismatch):
            writer.commit(expected="sha256:" + "1" * 64)
    with store.writer() as writer:
        writer.write(b"discarded when the block ends")
    assert [d for d, _ in store.walk()] == [digest] and leftovers(store) == []


def test_errors_name_the_blob(store: ContentStore) -> None:
    missing = "sha256:" + "a" * 64
    with pytest.raises(BlobNotFound, match=f"blob {missing} not found"):
        store.open(missing)
    with pytest.raises(InvalidDigest, match="sha256 needs 64 lowercase hex digits"):
        store.has("sha256:abc")
    with pytest.raises(InvalidDigest, match="unsupported algorithm 'md5'"):
        store.ingest([b""], "md5:" + "0" * 32)
    with pytest.raises(InvalidDigest, match="expected algorithm:hex"):
        store.path("nocolon")


def test_delete_and_corruption_check(store: ContentStore) -> None:
    digest = store.put(b"payload")
    path = store.path(digest)
    os.chmod(path, 0o644)
    with open(path, "wb") as f:
        f.write(b"tampered")
    with pytest.raises(DigestMismatch, match="is corrupt"):
        store.verify(digest)
    store.delete(digest)
    assert not store.has(digest)
