"""Fuzzing the manifest, index and image config decoders (issue 9): any bytes, any JSON, and
valid documents with one value swapped for arbitrary JSON, either decode to the typed object
(whose fields then have the types they claim) or raise DecodeError; nothing else escapes.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from sampan.oci.decode import DecodeError
from sampan.oci.image import (
    Descriptor,
    ImageConfig,
    Index,
    Manifest,
    parse_config,
    parse_digest,
    parse_index,
    parse_manifest,
    sniff_media_type,
)

DIGEST = "sha256:" + "a" * 64
DESCRIPTOR = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": DIGEST,
              "size": 10, "annotations": {"k": "v"},
              "platform": {"architecture": "amd64", "os": "linux"}}
MANIFEST = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {**DESCRIPTOR, "mediaType": "application/vnd.oci.image.config.v1+json"},
            "layers": [DESCRIPTOR, DESCRIPTOR]}
INDEX = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
         "manifests": [{**DESCRIPTOR, "mediaType": MANIFEST["mediaType"]}]}
CONFIG = {"architecture": "amd64", "os": "linux",
          "rootfs": {"type": "layers", "diff_ids": [DIGEST]},
          "config": {"Env": ["A=b"], "Cmd": ["sh"], "ExposedPorts": {"80/tcp": {}},
                     "Healthcheck": {"Test": ["CMD", "true"], "Interval": 1}},
          "history": [{"created_by": "x", "empty_layer": True}]}
DECODERS = {"manifest": (parse_manifest, MANIFEST, Manifest), "index": (parse_index, INDEX, Index),
            "config": (parse_config, CONFIG, ImageConfig)}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=20)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


def _replaced(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    copy = json.loads(json.dumps(doc))
    node = copy
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return copy


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, bytes]:
    """A valid document of one kind with one value (or key) replaced by arbitrary JSON."""
    kind = draw(st.sampled_from(sorted(DECODERS)))
    doc = DECODERS[kind][1]
    path = draw(st.sampled_from(_paths(doc)))
    if draw(st.booleans()):
        doc = _replaced(doc, path, draw(json_values))
    elif path:  # drop the key or item
        parent = json.loads(json.dumps(doc))
        node = parent
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
        doc = parent
    return kind, json.dumps(doc).encode()


raw_documents = st.one_of(
    st.tuples(st.sampled_from(sorted(DECODERS)), json_values.map(lambda v: json.dumps(v).encode())),
    st.tuples(st.sampled_from(sorted(DECODERS)), st.binary(max_size=64)),
    mutated(),
)


def _check_typed(obj: Any) -> None:
    """A decoded document holds the types its class declares, digests valid."""
    descriptors: list[Descriptor] = []
    if isinstance(obj, Manifest):
        assert obj.schema_version == 2 and isinstance(obj.layers, list)
        descriptors = [obj.config, *obj.layers]
    elif isinstance(obj, Index):
        descriptors = list(obj.manifests)
    else:
        assert isinstance(obj, ImageConfig)
        assert isinstance(obj.architecture, str) and isinstance(obj.os, str)
        for diff_id in obj.rootfs.diff_ids:
            parse_digest(diff_id)
        if obj.config is not None and obj.config.env is not None:
            assert all(isinstance(e, str) for e in obj.config.env)
    for desc in descriptors:
        assert isinstance(desc, Descriptor) and isinstance(desc.media_type, str)
        parse_digest(desc.digest)
        assert isinstance(desc.size, int) and not isinstance(desc.size, bool)
        assert desc.size >= 0


@given(raw_documents)
@example(("manifest", b"[" * 100_000))  # found: RecursionError escaped json.loads
@example(("config", b'{"a": ' * 50_000))
@example(("index", b"1" * 5000))  # found: int() digit limit, a ValueError not JSONDecodeError
@example(("manifest", b"\xff\xfe{\x00}\x00"))
@example(("manifest", json.dumps({**MANIFEST, "schemaVersion": 2.0}).encode()))
@example(("manifest", json.dumps({**MANIFEST, "schemaVersion": True}).encode()))
@example(("config", json.dumps({**CONFIG, "rootfs": {"type": "layers",
                                                     "diff_ids": [DIGEST + "\n"]}}).encode()))
@example(("manifest", json.dumps({**MANIFEST, "layers": [{**DESCRIPTOR, "size": -1}]}).encode()))
@example(("manifest", b'{"schemaVersion": 2, "config": NaN}'))
def test_decoders_return_typed_objects_or_decode_errors(case: tuple[str, bytes]) -> None:
    kind, data = case
    decoder = DECODERS[kind][0]
    try:
        obj = decoder(data)  # type: ignore[operator]
    except DecodeError as exc:
        assert str(exc)
    else:
        _check_typed(obj)
    try:
        media_type = sniff_media_type(data)
    except DecodeError:
        pass
    else:
        assert isinstance(media_type, str) and media_type


def test_the_valid_documents_decode() -> None:
    """The seeds of the mutations are themselves accepted (or every mutation would be
    refused for the wrong reason)."""
    for decoder, doc, cls in DECODERS.values():
        assert isinstance(decoder(json.dumps(doc).encode()), cls)  # type: ignore[operator]
