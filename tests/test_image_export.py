"""Reading a built image out of an export, in every layout Dockpool may be handed.

Every export here starts as a real `docker save` from the private engine. This
machine's engine (20.10) writes only Docker's classic layout. The containerd image
store's layout (Docker Desktop's default) is containerd's own export of that save, made
by a private containerd (tests/containerd.py). The other OCI layouts are rewritten from
it the way their writers write them: Docker 25+ without the containerd store
(`manifest.json` beside `index.json`, uncompressed layers named by their diffID) and
`buildx --output type=oci` (gzip layers, an index that may point at another index and
at attestation manifests). The layer bytes and the config stay the engine's own.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import threading
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from gui.pipeline.image_export import (DOCKER_CONFIG, DOCKER_GZIP_LAYER, DOCKER_MANIFEST, OCI_GZIP_LAYER, OCI_INDEX,
                                       OCI_MANIFEST, Blob, Compression, ExportError, read_export)
from gui.pipeline.push_direct import image_manifest
from gui.pipeline.spool import MemoryBudget, Spool
from tests.containerd import manifest_in
from tests.helpers import write_image

OCI_TAR_LAYER = "application/vnd.oci.image.layer.v1.tar"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def saved(docker_client: docker.APIClient, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A two-layer image from the engine: its `docker save` tar, config and layers."""
    root = tmp_path_factory.mktemp("export")
    folder = write_image(root, "two-layers", payload=300_000, extra="COPY Dockerfile /Dockerfile")
    image_id = None
    for item in docker_client.build(path=str(folder), rm=True, decode=True):
        assert "error" not in item, item
        image_id = (item.get("aux") or {}).get("ID", image_id)
    archive = root / "save.tar"
    with archive.open("wb") as target:
        for chunk in docker_client.get_image(image_id):
            target.write(chunk)
    with tarfile.open(archive) as tar:
        entry = json.load(tar.extractfile("manifest.json"))[0]  # type: ignore[arg-type]
        config = tar.extractfile(entry["Config"]).read()  # type: ignore[union-attr]
        layers = [tar.extractfile(name).read() for name in entry["Layers"]]  # type: ignore[union-attr]
    diff_ids = json.loads(config)["rootfs"]["diff_ids"]
    assert [sha256(layer) for layer in layers] == diff_ids and len(layers) == 2
    return {"archive": archive, "config": config, "layers": layers, "diff_ids": diff_ids, "image_id": image_id}


@pytest.fixture(scope="module")
def tagged_save(docker_client: docker.APIClient, saved: dict,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The saved image again, under a name (containerd imports named images)."""
    docker_client.tag(saved["image_id"], "dockpool-tests/two-layers", "1")
    archive = tmp_path_factory.mktemp("tagged") / "save.tar"
    try:
        with archive.open("wb") as target:
            for chunk in docker_client.get_image("dockpool-tests/two-layers:1"):
                target.write(chunk)
    finally:
        docker_client.remove_image("dockpool-tests/two-layers:1")  # nothing is left in the engine
    yield archive


def write_tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def oci_archive(path: Path, saved: dict, *, compressed: bool, docker_manifest: bool = False,
                nested: bool = False, defect: str = "") -> tuple[Path, list[bytes]]:
    """An OCI layout of the saved image; returns it and its layer blobs as stored.
    `nested`: as buildx writes it, with an attestation, a platform the export does not
    hold, and another platform's image (its manifest and config only, as an engine
    holds a platform it did not pull) listed before this one. `defect`: as Docker 25.0.0-25.0.2 wrote `docker save <ID>`:
    an index that lists nothing, or a manifest without the layers (moby#47210, #47065);
    or a layer the export lacks."""
    blobs = {}
    layer_blobs = [gzip.compress(layer, mtime=0) if compressed else layer for layer in saved["layers"]]
    descriptors = []
    for blob in layer_blobs:
        blobs[sha256(blob)] = blob
        descriptors.append({"mediaType": OCI_GZIP_LAYER if compressed else OCI_TAR_LAYER,
                            "digest": sha256(blob), "size": len(blob)})
    blobs[sha256(saved["config"])] = saved["config"]
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": sha256(saved["config"]), "size": len(saved["config"])},
                           "layers": [] if defect == "manifest-without-layers" else descriptors}).encode()
    blobs[sha256(manifest)] = manifest
    top = [{"mediaType": OCI_MANIFEST, "digest": sha256(manifest), "size": len(manifest)}]
    if nested:  # buildx: an index of platforms, with an attestation manifest listed first
        attestation = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {}, "layers": []}).encode()
        blobs[sha256(attestation)] = attestation
        other_config = json.dumps({"architecture": "arm64", "os": "linux", "rootfs": {
            "type": "layers", "diff_ids": [sha256(b"arm64 layer")]}}).encode()
        other = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(other_config),
            "size": len(other_config)}, "layers": [{"mediaType": OCI_GZIP_LAYER, "digest": sha256(b"absent"),
                                                    "size": 6}]}).encode()
        blobs.update({sha256(other_config): other_config, sha256(other): other})
        inner = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": sha256(attestation), "size": len(attestation),
             "platform": {"os": "unknown", "architecture": "unknown"},
             "annotations": {"vnd.docker.reference.type": "attestation-manifest"}},
            {"mediaType": OCI_MANIFEST, "digest": sha256(b"never pulled"), "size": 12,
             "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
            {"mediaType": OCI_MANIFEST, "digest": sha256(other), "size": len(other),
             "platform": {"os": "linux", "architecture": "arm64"}},
            {"mediaType": OCI_MANIFEST, "digest": sha256(manifest), "size": len(manifest),
             "platform": {"os": "linux", "architecture": "amd64"}}]}).encode()
        blobs[sha256(inner)] = inner
        top = [{"mediaType": OCI_INDEX, "digest": sha256(inner), "size": len(inner)}]
    members = {"oci-layout": b'{"imageLayoutVersion": "1.0.0"}',
               "index.json": json.dumps({"schemaVersion": 2,
                                         "manifests": None if defect == "index-lists-nothing" else top}).encode()}
    if defect == "layer-missing":
        del blobs[sha256(layer_blobs[0])]
    members.update({f"blobs/sha256/{digest[7:]}": data for digest, data in blobs.items()})
    if docker_manifest:  # Docker 25+: the classic manifest.json, naming the same blobs
        members["manifest.json"] = json.dumps([{
            "Config": f"blobs/sha256/{sha256(saved['config'])[7:]}", "RepoTags": None,
            "Layers": [f"blobs/sha256/{sha256(blob)[7:]}" for blob in layer_blobs]}]).encode()
    return write_tar(path, members), layer_blobs


def gzip_layout(path: Path, layers: list[bytes], order: list[int] | None = None,
                level: int = 9) -> tuple[Path, list[str], list[bytes]]:
    """An OCI layout of gzip layers, its index.json last as containerd writes it: the
    image lists layers[i] for each i of `order` (each in turn by default). Returns the
    archive, the config's diffIDs and the gzip blobs."""
    order = list(range(len(layers))) if order is None else order
    diff_ids = [sha256(layers[i]) for i in order]
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    blobs = [gzip.compress(layer, compresslevel=level, mtime=0) for layer in layers]
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {
        "mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": OCI_GZIP_LAYER, "digest": sha256(blobs[i]), "size": len(blobs[i])}
                   for i in order]}).encode()
    members = {f"blobs/sha256/{sha256(b)[7:]}": b for b in [*blobs, config, manifest]}
    members["index.json"] = json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": sha256(manifest), "size": len(manifest)}]}).encode()
    return write_tar(path, members), diff_ids, blobs


def read(archive: Path, workdir: Path, saved: dict, wanted=lambda diff_id: True) -> tuple:
    workdir.mkdir(exist_ok=True)
    handed: list[Blob] = []
    with archive.open("rb") as stream:
        exported = read_export(stream, workdir, MemoryBudget(), saved["diff_ids"], wanted=wanted, ready=handed.append)
    return exported, handed


def contents(spool: Spool) -> bytes:
    with spool.open() as reader:
        return b"".join(iter(lambda: reader.read(65536), b""))


def compressed(blob: Blob) -> bytes:
    """What the uploader sends for a layer handed over uncompressed: compressed from the
    export as it was read, or (`raw`) by the uploader's compressor."""
    compression = blob.compressing
    if compression is None:
        assert blob.raw is not None
        compression = Compression(blob.raw, MemoryBudget())
        compression.run()
    assert compression.done and compression.digest == sha256(contents(compression.output))
    return contents(compression.output)


def test_a_missing_layer_is_named_by_both_readings(tmp_path: Path, saved: dict) -> None:
    archive, _ = oci_archive(tmp_path / "oci.tar", saved, compressed=True, docker_manifest=True,
                             defect="layer-missing")
    handed: list[Blob] = []
    with pytest.raises(ExportError, match="which it does not contain; read by its manifest.json: .* does not contain"):
        with archive.open("rb") as stream:
            read_export(stream, tmp_path, MemoryBudget(), saved["diff_ids"], wanted=lambda _: True,
                        ready=handed.append)
    assert handed == [], "a layer of an image that cannot be pushed was handed over for upload"


def test_a_layer_listed_twice_goes_once(tmp_path: Path) -> None:
    """Images repeat layers (the same files copied in again): the blob is handed over,
    and uploaded, once."""
    first, second = os.urandom(5000), os.urandom(5000)
    archive, diff_ids, blobs = gzip_layout(tmp_path / "oci.tar", [first, second], order=[0, 1, 0])
    exported, handed = read(archive, tmp_path / "work", {"diff_ids": diff_ids})
    assert len(handed) == 2 and exported.layers[0] is exported.layers[2]
    assert [b.digest for b in exported.layers] == [sha256(blobs[0]), sha256(blobs[1]), sha256(blobs[0])]


def test_an_image_without_layers(tmp_path: Path, containerd) -> None:
    """FROM scratch with labels only: a config without diffIDs, a manifest without
    layers, as containerd's exporter writes it. (This engine, 20.10, refuses to export
    such an image: "empty export - not implemented"; so its save is written here.)"""
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Labels": {"only": "labels"}},
                         "rootfs": {"type": "layers"}}).encode()
    saved = write_tar(tmp_path / "save.tar", {
        f"{sha256(config)[7:]}.json": config,
        "manifest.json": json.dumps([{"Config": f"{sha256(config)[7:]}.json",
                                      "RepoTags": ["dockpool-tests/labels-only:1"], "Layers": []}]).encode()})
    archive = containerd.export(saved, "dockpool-tests/labels-only:1", tmp_path / "containerd.tar", compress=True)
    assert manifest_in(archive)["layers"] == [], "containerd wrote another image: the test would prove nothing"
    exported, handed = read(archive, tmp_path / "work", {"diff_ids": []})
    assert (exported.layers, handed) == ([], [])
    assert exported.config == config


def test_many_small_compressed_layers_wait_on_disk_not_in_memory(tmp_path: Path) -> None:
    """An export's small members stay in memory until the image is read (configs and
    manifests are needed then), but not without bound: the containerd store's gzip
    layers under 1 MiB would all be held there, however many the image has."""
    layers = [os.urandom(900_000) for _ in range(24)]  # random: gzip keeps their size
    archive, diff_ids, blobs = gzip_layout(tmp_path / "oci.tar", layers, level=1)
    del layers, blobs
    tracemalloc.start()
    try:
        exported, _ = read(archive, tmp_path / "work", {"diff_ids": diff_ids})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(exported.layers) == 24
    assert peak < 12_000_000, f"{peak / 1e6:.1f} MB held for 21.6 MB of layers"


def test_classic_layout_hands_over_uncompressed_layers(tmp_path: Path, saved: dict) -> None:
    exported, handed = read(saved["archive"], tmp_path / "work", saved)
    assert exported.manifest_media_type == DOCKER_MANIFEST and exported.config == saved["config"]
    # Handed over in the archive's order, as each is read; listed in the image's order.
    assert sorted(handed, key=id) == sorted(exported.layers, key=id)
    assert [b.diff_id for b in exported.layers] == saved["diff_ids"]
    assert [gzip.decompress(compressed(b)) for b in exported.layers] == saved["layers"]


@pytest.mark.parametrize("docker_manifest", [True, False], ids=["docker-25", "oci-only"])
def test_oci_layout_with_uncompressed_layers(tmp_path: Path, saved: dict, docker_manifest: bool) -> None:
    archive, _ = oci_archive(tmp_path / "oci.tar", saved, compressed=False, docker_manifest=docker_manifest)
    exported, handed = read(archive, tmp_path / "work", saved)
    assert exported.config == saved["config"]
    assert [b.diff_id for b in handed] == saved["diff_ids"] and all(b.compressing for b in handed)
    assert [gzip.decompress(compressed(b)) for b in handed] == saved["layers"]
    # Dockpool compressed every layer, as `docker push` does from these engines: the image
    # goes as Docker v2, as it did from the classic layout, and keeps its digest.
    assert (exported.manifest_media_type, exported.config_media_type) == (DOCKER_MANIFEST, DOCKER_CONFIG)


@pytest.mark.parametrize("defect", ["index-lists-nothing", "manifest-without-layers"])
def test_docker_25_early_exports_are_read_by_their_manifest_json(tmp_path: Path, saved: dict, defect: str) -> None:
    archive, _ = oci_archive(tmp_path / "oci.tar", saved, compressed=False, docker_manifest=True, defect=defect)
    exported, handed = read(archive, tmp_path / "work", saved)
    assert exported.config == saved["config"] and exported.manifest_media_type == DOCKER_MANIFEST
    assert [b.diff_id for b in exported.layers] == saved["diff_ids"]
    assert [gzip.decompress(compressed(b)) for b in exported.layers] == saved["layers"]


def test_a_manifest_whose_layers_its_config_does_not_list_is_refused(tmp_path: Path, saved: dict) -> None:
    """Pushed, it would be an image nobody can pull."""
    archive, _ = oci_archive(tmp_path / "oci.tar", saved, compressed=False, defect="manifest-without-layers")
    with pytest.raises(ExportError, match="lists 0 layers, its config 2"):
        read(archive, tmp_path / "work", saved)


def test_containerd_store_export_keeps_its_gzip_layers(tmp_path: Path, saved: dict, tagged_save: Path,
                                                       containerd) -> None:
    """The containerd image store's export, written by containerd itself: gzip layers
    under Docker's media types, and (as Docker's `docker save` writes it) a manifest.json
    that names those gzip blobs. The layers go as they are, and the manifest Dockpool
    pushes lists exactly what the store's own manifest does."""
    archive = containerd.export(tagged_save, "dockpool-tests/two-layers:1", tmp_path / "containerd.tar",
                                compress=True)
    theirs = manifest_in(archive)
    assert theirs["mediaType"] == DOCKER_MANIFEST and {layer["mediaType"] for layer in theirs["layers"]} == {
        DOCKER_GZIP_LAYER}, "containerd wrote another layout: the test would prove something else"
    exported, handed = read(archive, tmp_path / "work", saved)
    assert exported.config == saved["config"] and exported.manifest_media_type == DOCKER_MANIFEST
    assert sorted(handed, key=id) == sorted(exported.layers, key=id)
    assert [(b.digest, b.size, b.media_type) for b in exported.layers] == [
        (layer["digest"], layer["size"], layer["mediaType"]) for layer in theirs["layers"]]
    assert [gzip.decompress(contents(b.body)) for b in exported.layers] == saved["layers"]  # type: ignore[arg-type]
    assert [b.diff_id for b in exported.layers] == saved["diff_ids"]
    ours = image_manifest(exported.manifest_media_type, exported.config_digest, len(exported.config),
                          exported.layers)
    assert json.loads(ours) == theirs


def test_containerd_store_export_of_a_loaded_image(tmp_path: Path, saved: dict, tagged_save: Path,
                                                   containerd) -> None:
    """An image the store holds uncompressed (`docker load` of a classic export): its
    layers are named by their diffIDs and compressed as they are read."""
    archive = containerd.export(tagged_save, "dockpool-tests/two-layers:1", tmp_path / "containerd.tar",
                                compress=False)
    exported, handed = read(archive, tmp_path / "work", saved)
    assert exported.config == saved["config"]
    assert sorted(handed, key=id) == sorted(exported.layers, key=id) and all(b.compressing for b in handed)
    assert [b.diff_id for b in exported.layers] == saved["diff_ids"]
    assert [gzip.decompress(compressed(b)) for b in exported.layers] == saved["layers"]


@pytest.mark.parametrize("nested", [False, True], ids=["containerd", "buildx-index"])
def test_oci_layout_keeps_compressed_layers_as_they_are(tmp_path: Path, saved: dict, nested: bool) -> None:
    archive, blobs = oci_archive(tmp_path / "oci.tar", saved, compressed=True, nested=nested)
    exported, handed = read(archive, tmp_path / "work", saved)
    assert exported.manifest_media_type == OCI_MANIFEST and exported.config == saved["config"]
    assert [(b.digest, b.size, b.media_type) for b in handed] == [(sha256(x), len(x), OCI_GZIP_LAYER) for x in blobs]
    assert [contents(b.body) for b in handed] == blobs  # type: ignore[arg-type]
    assert all(b.raw is None for b in handed)
    assert [b.diff_id for b in handed] == saved["diff_ids"]  # from the config: the layer cache learns them


def test_without_the_engines_layers_the_image_the_export_holds_is_taken(tmp_path: Path, saved: dict) -> None:
    """An engine that did not list the image's layers: of the Linux images in the index,
    the first one the export holds whole (not arm64, whose layers it lacks)."""
    archive, _ = oci_archive(tmp_path / "oci.tar", saved, compressed=True, nested=True)
    exported, _ = read(archive, tmp_path / "work", {"diff_ids": []})
    assert exported.config == saved["config"]


def test_compressed_layers_the_registry_has_are_not_handed_over(tmp_path: Path, saved: dict) -> None:
    archive, blobs = oci_archive(tmp_path / "oci.tar", saved, compressed=True)
    first, second = saved["diff_ids"]
    exported, handed = read(archive, tmp_path / "work", saved, wanted=lambda diff_id: diff_id != first)
    assert [(b.digest, b.diff_id) for b in handed] == [(sha256(blobs[1]), second)]
    assert not exported.layers[0].digest and exported.layers[0].diff_id == first


def test_layers_the_registry_has_are_not_handed_over(tmp_path: Path, saved: dict) -> None:
    first, second = saved["diff_ids"]
    exported, handed = read(saved["archive"], tmp_path / "work", saved, wanted=lambda diff_id: diff_id != first)
    assert [b.diff_id for b in handed] == [second] and handed[0].raw is not None
    assert not exported.layers[0].digest and exported.layers[0].raw is None
    assert sorted(p.suffix for p in (tmp_path / "work").iterdir()) == [".tar"]  # the unwanted one is gone
    assert gzip.decompress(compressed(handed[0])) == saved["layers"][1]


@pytest.mark.parametrize("budget", [64 << 20, 100_000, 0], ids=["in-memory", "one-layer-in-memory", "on-disk"])
def test_when_every_layer_is_wanted_each_goes_as_it_arrives(tmp_path: Path, saved: dict, budget: int) -> None:
    """A first push needs every layer: each is handed over at its tar header, before its
    bytes are read (the upload starts at once); only compressed bytes are kept, in memory
    while the push's budget allows, and only what does not fit reaches the disk (a layer
    split between the two: test_compression_is_read_while_it_is_written)."""
    seen_at_handover: list[bool] = []

    def ready(blob: Blob) -> None:
        assert blob.compressing is not None and blob.raw is None
        seen_at_handover.append(blob.compressing.done)

    workdir = tmp_path / "work"
    workdir.mkdir()
    with saved["archive"].open("rb") as stream:
        exported = read_export(stream, workdir, MemoryBudget(budget), saved["diff_ids"], wanted=lambda diff_id: True,
                               ready=ready)
    assert seen_at_handover == [False, False]
    assert [b.diff_id for b in exported.layers] == saved["diff_ids"]
    assert [gzip.decompress(compressed(b)) for b in exported.layers] == saved["layers"]
    on_disk = [p.stat().st_size for p in workdir.iterdir()]
    sizes = [b.compressing.size for b in exported.layers]  # type: ignore[union-attr]
    heads = [b.compressing.output.head_size for b in exported.layers]  # type: ignore[union-attr]
    assert sum(heads) <= budget and sum(on_disk) + sum(heads) == sum(sizes)
    if budget == 0:
        assert sorted(on_disk) == sorted(sizes)
    elif budget > sum(sizes):
        assert on_disk == [], "a layer that fits the budget was written to disk"
    else:
        assert sum(heads) > 0 and on_disk, "the split between memory and disk was not exercised"



def test_an_export_without_a_manifest_says_so(tmp_path: Path, saved: dict) -> None:
    archive = write_tar(tmp_path / "odd.tar", {"repositories": b"{}"})
    with pytest.raises(ExportError, match="neither manifest.json nor index.json"):
        read(archive, tmp_path / "work", saved)


def test_compression_is_read_while_it_is_written(tmp_path: Path, saved: dict) -> None:
    """The upload reads the compressed file as the compressor thread fills it: what it
    reads is exactly the final file, and the same layer always gives the same digest."""
    raw = tmp_path / "layer.tar"
    raw.write_bytes(saved["layers"][0] * 20)  # several compressor chunks
    compression = Compression(raw, MemoryBudget(300_000))  # the head in memory, the rest in a file
    worker = threading.Thread(target=compression.run)
    worker.start()
    streamed = b"".join(compression.pieces(piece=4096))
    worker.join()
    assert 0 < compression.output.head_size < compression.size
    assert streamed == contents(compression.output) and gzip.decompress(streamed) == raw.read_bytes()
    assert compression.digest == sha256(streamed) and compression.size == len(streamed)
    again = tmp_path / "again.tar"
    again.write_bytes(raw.read_bytes())
    repeat = Compression(again, MemoryBudget())
    repeat.run()
    assert repeat.digest == compression.digest


class _CutReads(io.RawIOBase):
    """A stream that answers every read with at most `cut` bytes, as a socket may."""

    def __init__(self, data: bytes, cut: int) -> None:
        self._data = io.BytesIO(data)
        self._cut = cut

    def read(self, size: int = -1) -> bytes:
        return self._data.read(self._cut if size is None or size < 0 else min(size, self._cut))


def test_a_layer_compresses_to_one_gzip_stream_the_same_however_it_is_read(tmp_path: Path) -> None:
    """Blocks deflated side by side join into one valid gzip stream; its bytes depend on
    the layer alone (not on how the export's reads are cut, nor on the platform)."""
    layer = b"".join(b"line %d of a log that compresses well\n" % i for i in range(40_000))
    layer += bytes(range(256)) * 3000 + layer[:100_000]  # past a block, and back-references across blocks
    raw = tmp_path / "layer.tar"
    raw.write_bytes(layer)
    outputs = []
    for cut in (1 << 20, 4096, 999):
        compression = Compression(raw, MemoryBudget())
        compression.run_stream(_CutReads(layer, cut))
        outputs.append(contents(compression.output))
        assert compression.diff_id == sha256(layer) and compression.digest == sha256(outputs[-1])
    assert outputs[0] == outputs[1] == outputs[2]
    stream = outputs[0]
    assert stream[:10] == bytes([0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 255])  # no time, no name, OS "unknown"
    assert gzip.decompress(stream) == layer
    whole = zlib.decompressobj(31)  # exactly one gzip member, with nothing after it
    assert whole.decompress(stream) == layer and whole.eof and whole.unused_data == b""
    assert len(stream) < len(layer) // 5
    assert any(thread.name.startswith("dockpool-deflate") for thread in threading.enumerate())


def _compressed(tmp_path: Path, layer: bytes, level: int = 6) -> bytes:
    tmp_path.mkdir(parents=True, exist_ok=True)
    raw = tmp_path / f"layer-{level}.tar"
    raw.write_bytes(layer)
    compression = Compression(raw, MemoryBudget(), level)
    compression.run()
    return contents(compression.output)


def test_blocks_refer_back_into_the_block_before(tmp_path: Path) -> None:
    """Each block is primed with the 32 KiB before it: 20 KB of random bytes repeated 100
    times costs little more than 20 KB, however the repeats fall across blocks (without
    the priming, every block would start over: 176 KB)."""
    layer = os.urandom(20_000) * 100
    stream = _compressed(tmp_path, layer)
    assert gzip.decompress(stream) == layer and len(stream) < 2 * 20_000
    assert _compressed(tmp_path, layer, level=1) != _compressed(tmp_path, layer, level=9)  # the level is used


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork exists on Linux and macOS only")
def test_a_forked_child_compresses_with_threads_of_its_own(tmp_path: Path) -> None:
    """A child forked after its parent compressed has none of the parent's deflate threads:
    it must make its own pool, not wait for ever on the parent's."""
    layer = os.urandom(3 * 256 * 1024)
    expected = _compressed(tmp_path, layer)  # the parent's pool exists now
    child = os.fork()
    if child == 0:
        try:
            code = 0 if _compressed(tmp_path / "child", layer) == expected else 1
        except BaseException:
            code = 2
        os._exit(code)
    deadline = time.monotonic() + 20
    while (ended := os.waitpid(child, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    if ended[0] == 0:
        os.kill(child, 9)
        os.waitpid(child, 0)
        pytest.fail("the forked child never finished compressing")
    assert os.waitstatus_to_exitcode(ended[1]) == 0


class _SlowReads(io.RawIOBase):
    """An export that delivers a block every 50 ms, for ever."""

    def read(self, size: int = -1) -> bytes:
        time.sleep(0.05)
        return os.urandom(max(1, min(size, 256 * 1024)))


def test_a_compression_stopped_in_the_middle_ends_at_once(tmp_path: Path) -> None:
    compression = Compression(tmp_path / "layer.tar", MemoryBudget())
    worker = threading.Thread(target=compression.run_stream, args=(_SlowReads(),))
    worker.start()
    reader = compression.pieces()
    assert next(reader)  # it has started
    compression.stop()
    worker.join(2)
    assert not worker.is_alive()
    with pytest.raises(ExportError, match="stopped"):
        b"".join(reader)


def test_a_stopped_compression_ends_its_readers(tmp_path: Path, saved: dict) -> None:
    raw = tmp_path / "layer.tar"
    raw.write_bytes(saved["layers"][0] * 20)
    compression = Compression(raw, MemoryBudget())
    compression.stop()
    compression.run()
    assert not compression.done
    with pytest.raises(ExportError, match="stopped"):
        b"".join(compression.pieces())
    with pytest.raises(ExportError, match="stopped"):
        compression.wait()


def test_the_digest_is_told_before_the_layer_counts_as_compressed(tmp_path: Path) -> None:
    """The uploader asks the registry about a compressed layer from on_done: whoever then
    sees the layer done finds that asked. A failing on_done must not keep the layer from
    counting as compressed: its upload waits for that."""
    raw = tmp_path / "layer.tar"
    raw.write_bytes(b"layer bytes " * 10_000)
    told: list[tuple[bool, str]] = []
    compression = Compression(raw, MemoryBudget())
    compression.on_done = lambda c, digest: told.append((c.done, digest))
    compression.run()
    assert told == [(False, compression.digest)]
    failing = Compression(raw, MemoryBudget())

    def broken(c: Compression, digest: str) -> None:
        raise RuntimeError("a hint that failed")

    failing.on_done = broken
    failing.run()
    assert failing.wait(5) and failing.digest == compression.digest


def _open_in_this_process(path: Path) -> bool:
    for fd in Path("/proc/self/fd").iterdir():
        try:
            if Path(os.readlink(fd)) == path:
                return True
        except OSError:
            pass  # a descriptor closed while listed
    return False


def test_the_layer_file_is_closed_before_the_layer_counts_as_compressed(tmp_path: Path) -> None:
    """Whoever sees a layer compressed deletes its uncompressed file at once (the uploader
    does, then resumes a broken upload from the compressed one): Windows refuses to
    delete a file that is still open, and the push failed there."""
    raw = tmp_path / "layer.tar"
    raw.write_bytes(os.urandom(300_000))
    open_when_done: list[bool] = []
    compression = Compression(raw, MemoryBudget())
    compression.on_done = lambda c, digest: open_when_done.append(_open_in_this_process(raw))
    compression.run()
    assert open_when_done == [False], "the layer counted as compressed while its file was open"


def test_a_spool_reads_the_same_bytes_from_any_offset_across_memory_and_file(tmp_path: Path) -> None:
    """Resuming an upload reads from the registry's offset, which may fall in the
    memory head, in the file, or on the boundary; the budget is given back at the end."""
    budget = MemoryBudget(10_000)
    spool = Spool(tmp_path / "blob.gz", budget)
    data = bytes(range(256)) * 200  # 51,200 bytes in pieces of 3,000: three fit the budget
    for start in range(0, len(data), 3000):
        spool.write(data[start:start + 3000])
    spool.finish()
    assert spool.head_size == 9000 and budget.used == 9000
    assert (tmp_path / "blob.gz").stat().st_size == len(data) - 9000
    for offset in (0, 1, 8999, 9000, 9001, 30_000, len(data) - 1, len(data)):
        with spool.open(offset) as reader:
            assert b"".join(iter(lambda: reader.read(4096), b"")) == data[offset:], offset
    spool.discard()
    assert budget.used == 0 and not (tmp_path / "blob.gz").exists()
    with pytest.raises(ValueError):  # a compression that outlived its push stops at its next write
        spool.write(b"late")
    assert budget.used == 0
    # A blob of the export (an OCI layer) may be handed over twice: its file is the export's.
    shared = tmp_path / "layer.blob"
    shared.write_bytes(data)
    Spool.of_file(shared).discard()
    assert shared.read_bytes() == data
