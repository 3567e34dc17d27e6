"""Build Docker images without a Docker daemon: a ``docker save`` archive, and the blobs and
manifest that the lab pushes into its registry.

The lab has no internet, so its images are made here: one layer holding the static busybox
binary and a few applet links, and a config blob. The rootfs carries one in ``docker save``
format (for the lab's own Docker tests); the lab's registry serves the same layer under the
public names the catalog uses (``library/busybox:1.36``, pulled as ``busybox:1.36``).
Everything has fixed timestamps, so the same busybox binary always gives the same bytes;
``variant`` adds a file that makes a different image of the same tag (an upgrade).
"""

import gzip
import hashlib
import io
import json
import tarfile

#: Applets linked to ``/bin/busybox`` in the image.
APPLETS = (
    "sh", "httpd", "env", "id", "cat", "echo", "sleep", "touch", "ls", "mkdir", "wget",
    "rm", "ps", "true", "false", "hostname", "nc",
)

_EPOCH = 0
_CREATED = "1970-01-01T00:00:00Z"
_PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
_GROUP = "root:x:0:\nnogroup:x:65534:\n"


def _add(tar, name, *, data=None, mode=0o644, kind=tarfile.REGTYPE, target=""):
    info = tarfile.TarInfo(name)
    info.mtime, info.uid, info.gid, info.uname, info.gname = _EPOCH, 0, 0, "root", "root"
    info.type, info.mode, info.linkname = kind, mode, target
    if data is not None:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    else:
        tar.addfile(info)


def _tar_bytes(fill):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        fill(tar)
    return buf.getvalue()


def busybox_layer(busybox_binary, variant=""):
    """Return the bytes of the image's single layer tar.

    :param bytes busybox_binary: contents of a statically linked busybox.
    :param str variant: when given, written to ``/etc/image-variant`` (another image).
    """

    def fill(tar):
        for d in ("bin", "etc", "root", "www"):
            _add(tar, d, kind=tarfile.DIRTYPE, mode=0o755)
        _add(tar, "tmp", kind=tarfile.DIRTYPE, mode=0o1777)
        _add(tar, "bin/busybox", data=busybox_binary, mode=0o755)
        for applet in APPLETS:
            _add(tar, f"bin/{applet}", kind=tarfile.SYMTYPE, mode=0o777, target="busybox")
        _add(tar, "etc/passwd", data=_PASSWD.encode())
        _add(tar, "etc/group", data=_GROUP.encode())
        if variant:
            _add(tar, "etc/image-variant", data=f"{variant}\n".encode())

    return _tar_bytes(fill)


def image_config(layer):
    """Return the image config blob (bytes) of an image made of ``layer`` alone."""
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": _CREATED,
        "config": {
            "Env": ["PATH=/bin"],
            "Cmd": ["sh"],
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": _CREATED, "created_by": "tinsnip lab: busybox-static"}],
    }
    return json.dumps(config, sort_keys=True, separators=(",", ":")).encode()


MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_TYPE = "application/vnd.docker.container.image.v1+json"
LAYER_TYPE = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def registry_image(busybox_binary, variant=""):
    """Return ``(manifest, blobs)`` of the busybox image for a registry: the image manifest
    (schema 2, bytes) and ``{digest: bytes}`` of its config and gzipped layer."""
    layer = busybox_layer(busybox_binary, variant)
    packed = gzip.compress(layer, mtime=0)
    config = image_config(layer)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": CONFIG_TYPE, "size": len(config), "digest": digest(config)},
        "layers": [{"mediaType": LAYER_TYPE, "size": len(packed), "digest": digest(packed)}],
    }
    body = json.dumps(manifest, indent=3).encode()
    return body, {digest(config): config, digest(packed): packed}


def image_archive(busybox_binary, repo, tag):
    """Return the bytes of a ``docker save`` archive holding one busybox image.

    :param bytes busybox_binary: contents of a statically linked busybox.
    :param str repo: image repository, e.g. ``tinsnip/busybox``.
    :param str tag: image tag, e.g. ``1.35``.
    """
    layer = busybox_layer(busybox_binary)
    config_bytes = image_config(layer)
    config = json.loads(config_bytes)
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    # Legacy per-layer directory name: any stable 64-hex id works; derive it from the layer.
    layer_id = hashlib.sha256(b"layer:" + layer).hexdigest()
    legacy_json = {"id": layer_id, "created": _CREATED, "config": config["config"],
                   "architecture": "amd64", "os": "linux"}
    manifest = [{
        "Config": config_name,
        "RepoTags": [f"{repo}:{tag}"],
        "Layers": [f"{layer_id}/layer.tar"],
    }]
    repositories = {repo: {tag: layer_id}}

    def fill(tar):
        _add(tar, layer_id, kind=tarfile.DIRTYPE, mode=0o755)
        _add(tar, f"{layer_id}/VERSION", data=b"1.0")
        _add(tar, f"{layer_id}/json", data=json.dumps(legacy_json, sort_keys=True).encode())
        _add(tar, f"{layer_id}/layer.tar", data=layer)
        _add(tar, config_name, data=config_bytes)
        _add(tar, "manifest.json", data=json.dumps(manifest).encode())
        _add(tar, "repositories", data=json.dumps(repositories).encode())

    return _tar_bytes(fill)
