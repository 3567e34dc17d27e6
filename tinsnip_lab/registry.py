"""The lab's image registry: Debian's ``docker-registry`` (the distribution registry) on the NAS
host, serving the images the catalog names under their public names.

The lab has no internet. At ``lab.up`` the registry starts on :data:`~settings.REGISTRY_HOST`
(port :data:`~settings.REGISTRY_PORT`, plain HTTP, no auth) and the lab pushes the images it
builds (:mod:`tinsnip_lab.images`) into it through the registry's HTTP API, e.g.
``library/busybox:1.36``. A machine user's daemon whose inventory names the registry as a
mirror (``docker: {registry_mirrors: [http://ds412plus:5000]}``) pulls ``busybox:1.36``
from it as it would from Docker Hub. :func:`push_busybox` with a ``variant`` pushes another
image under the same tag: an upgrade.
"""

import json
import time
import urllib.error
import urllib.parse
import urllib.request

from tinsnip_lab import images, remote, settings
from tinsnip_lab.errors import LabError

#: The registry's config on the NAS host: plain HTTP, no auth, filesystem storage.
CONFIG_PATH = "/etc/tinsnip-lab/registry.yml"
STORAGE = "/var/lib/docker-registry"
LOG = "/var/log/docker-registry.log"
CONFIG = f"""\
# Written by the tinsnip lab: the lab's registry (plain HTTP on the lab bridge, no auth).
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: {STORAGE}
  delete:
    enabled: true
http:
  addr: :{settings.REGISTRY_PORT}
"""

#: Repositories and tags pushed at lab.up: ``{repository: tag}`` (public Docker Hub names).
IMAGES = {"library/busybox": "1.36"}

#: The ``docker:`` settings of an inventory whose machines pull through the lab's registry.
INVENTORY_DOCKER = {
    "registry_mirrors": [f"http://{settings.REGISTRY_HOST}:{settings.REGISTRY_PORT}"],
    "insecure_registries": [f"{settings.REGISTRY_HOST}:{settings.REGISTRY_PORT}"],
}


def url():
    """The registry's base URL as this machine reaches it over the lab bridge."""
    return f"http://{settings.LAB_HOSTS[settings.REGISTRY_HOST]}:{settings.REGISTRY_PORT}"


def start_command():
    """The shell command (run as root on the registry host) that writes the config, starts
    the registry detached as the package's ``docker-registry`` user, and waits for it."""
    check = f"curl -sf -o /dev/null http://127.0.0.1:{settings.REGISTRY_PORT}/v2/"
    return (f"set -e; mkdir -p /etc/tinsnip-lab {STORAGE}; "
            f"chown docker-registry: {STORAGE}; "
            f"cat > {CONFIG_PATH} <<'EOF'\n{CONFIG}EOF\n"
            f"if ! {check}; then "
            f"setsid -f setpriv --reuid=docker-registry --regid=docker-registry --init-groups "
            f"/usr/bin/docker-registry serve {CONFIG_PATH} >> {LOG} 2>&1 < /dev/null; fi; "
            f"i=0; until {check}; do i=$((i+1)); "
            f"[ $i -ge 100 ] && {{ tail -n 20 {LOG} >&2; exit 1; }}; sleep 0.1; done")


def _request(method, path, data=None, headers=None):
    req = urllib.request.Request(url() + path, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        raise LabError(f"registry: {method} {path}: HTTP {e.code}: {e.read()[:300]!r}") from e
    except OSError as e:
        raise LabError(f"registry: {method} {path}: {e}") from e


def push(repository, tag, manifest, blobs):
    """Push an image (``manifest`` bytes, ``{digest: bytes}`` blobs) as ``repository:tag``
    through the registry's HTTP API; return the manifest's digest."""
    for digest, data in blobs.items():
        try:
            _request("HEAD", f"/v2/{repository}/blobs/{digest}")
            continue  # already there
        except LabError:
            pass
        _, headers, _ = _request("POST", f"/v2/{repository}/blobs/uploads/")
        location = headers.get("Location") or headers.get("location")
        parts = urllib.parse.urlsplit(location)
        query = parts.query + ("&" if parts.query else "") + urllib.parse.urlencode(
            {"digest": digest})
        _request("PUT", f"{parts.path}?{query}", data=data,
                 headers={"Content-Type": "application/octet-stream"})
    _, headers, _ = _request("PUT", f"/v2/{repository}/manifests/{tag}", data=manifest,
                             headers={"Content-Type": images.MANIFEST_TYPE})
    return headers.get("Docker-Content-Digest") or images.digest(manifest)


def tag_digest(repository, tag):
    """The digest the registry serves for ``repository:tag``."""
    _, headers, body = _request("HEAD", f"/v2/{repository}/manifests/{tag}",
                                headers={"Accept": images.MANIFEST_TYPE})
    return headers.get("Docker-Content-Digest")


def push_busybox(busybox_binary, repository="library/busybox", tag="1.36", variant=""):
    """Build the busybox image (another one for each ``variant``) and push it; return its
    manifest digest."""
    manifest, blobs = images.registry_image(busybox_binary, variant)
    return push(repository, tag, manifest, blobs)


def start(busybox_binary, log=print):
    """Start the registry on its host and push :data:`IMAGES`; return a line for the log."""
    started = time.monotonic()
    remote.run_root(settings.REGISTRY_HOST, start_command())
    pushed = [f"{repo}:{tag}@{push_busybox(busybox_binary, repo, tag)[:19]}"
              for repo, tag in IMAGES.items()]
    return (f"; registry {url()} on {settings.REGISTRY_HOST} with {', '.join(pushed)} "
            f"({time.monotonic() - started:.1f}s)")


def catalog():
    """The registry's repositories (``/v2/_catalog``)."""
    return json.loads(_request("GET", "/v2/_catalog")[2])["repositories"]
