"""The steps of a service on a machine (from the catalog or its own folder): its files and build
context on the mount, its image, the generation kept before a change, its Compose project
(checked by the preflight before it starts, then by the health gate), its forwards; and the
steps that remove it.

What the service is and what is written for it: plans/catalog.py; its secrets: plans/secrets.py;
the preflight: plans/preflight.py; generations, health gate and rollback: plans/generations.py;
``service.forward``: plans/forwards.py."""
from __future__ import annotations

from ..core import context
from ..ops import health
from ..ops.docker import ComposeDown, ComposeUp, ContextTree, DockerImage, ImagesPulled
from ..ops.forward import Forward
from ..ops.resources import Absent, Directory, File
from . import Target, step
from .catalog import service_dir, service_entry, tracked_images
from .forwards import owner
from .generations import generations, stamp, verify
from .machine import recorded
from .preflight import check
# run.py reads the secrets file through these names

DATA_FOLDERS = ("data", "state", "config")


@step("service.files", needs=("machine.mount",))
def files(t: Target) -> list:
    """The service's folders on the mount and its files (rendered by
    :func:`~tinsnip_tasks.plans.catalog.render_service`), all made by the machine user (on the
    mount root never writes)."""
    smep, service = t.smep, t.service
    compose, env = t.rendered.compose, t.rendered.env
    d = service_dir(smep, service)
    u = smep.uid
    out = [Directory(d, mode=0o750, owner=u)]
    out += [Directory(f"{smep.mount_point}/{f}/{service}", mode=0o750, owner=u)
            for f in DATA_FOLDERS]
    out += [File(f"{d}/docker-compose.yml", compose.encode(), mode=0o640, owner=u,
                 holds_secret=t.rendered.compose_secret),
            File(f"{d}/.env", env.encode(), mode=0o600, secret=True, owner=u,
                 public=t.rendered.public),
            recorded(f"{d}/.env", env.encode(), smep.mount_point)]
    return out


@step("service.context", needs=("machine.mount", "service.files"))
def upload(t: Target) -> list:
    """The build context of a service from its own folder (nothing for a catalog service)."""
    smep, service, rendered = t.smep, t.service, t.rendered
    if rendered.folder is None:
        return []
    folder, names = rendered.folder, list(rendered.context_files)
    return [ContextTree(smep.uid, service_dir(smep, service), rendered.context_digest,
                        lambda: context.tarball(folder, names))]


@step("service.image", needs=("machine.docker",))
def image(t: Target) -> list:
    """The service's image in the user's daemon, loaded from the archive ``service.yaml`` names
    (``image_archive``, a file on the host) if missing; nothing for a service without one."""
    smep, entry = t.smep, service_entry(t.inv, t.smep.machine, t.service)
    if not entry.image_archive:
        return []
    return [DockerImage(smep.user, smep.uid, entry.image, entry.image_archive)]


@step("service.pull", needs=("machine.docker",))
def pull(t: Target) -> list:
    """``--pull``: every tracked image as the registry serves it now (pulled where the digest
    differs); ``service.up`` then starts again what uses a new one."""
    refs = tracked_images(t)
    return [ImagesPulled(t.smep.user, t.smep.uid, refs)] if refs else []


@step("service.generation", needs=("machine.mount", "service.pull"))
def generation(t: Target) -> list:
    """Before a deploy changes the running service (its files, or an image ``--pull``
    brought), what it runs is kept as a generation."""
    smep, service = t.smep, t.service
    return [health.SaveGeneration(smep.user, smep.uid, smep.mount_point,
                                  service_dir(smep, service), generations(smep, service), service,
                                  stamp(smep, t.rendered), images=tracked_images(t))]


@step("service.up", needs=("machine.mount", "machine.docker", "machine.env", "service.files",
                           "service.context", "service.image", "service.pull"), before=check,
      after=verify)
def up(t: Target) -> list:
    """The Compose project runs with its current files and images (the seed's ``up -d`` when
    not); the preflight (:func:`~tinsnip_tasks.plans.preflight.check`) runs first, and only when
    something is to start."""
    smep, service = t.smep, t.service
    return [ComposeUp(smep.user, smep.uid, smep.mount_point, service_dir(smep, service),
                      service, stamp(smep, t.rendered), t.rendered.build, tracked_images(t),
                      generations(smep, service))]


@step("service.forward")
def forwards(t: Target) -> list:
    """The inventory's ``forward:`` entries of the service in this environment."""
    smep, service = t.smep, t.service
    svc = t.me.machine.services.get(service)
    return [Forward(port, smep.ports[svc.ports[name]], owner(smep, service))
            for port, name, env in (svc.forward if svc else ()) if env == smep.env]


@step("service.down")
def down(t: Target) -> list:
    """The Compose project stopped and its containers removed."""
    smep, service = t.smep, t.service
    return [ComposeDown(smep.user, smep.uid, smep.mount_point, service_dir(smep, service),
                        service)]


@step("service.remove", needs=("service.down",))
def removed(t: Target) -> list:
    """The service's folder on the mount (files and build context) and its forwards; its data,
    state and config folders are NAS data and stay."""
    smep, service = t.smep, t.service
    return [Absent(service_dir(smep, service), smep.uid),
            Absent(generations(smep, service), smep.uid),
            health.GenerationTags(smep.user, smep.uid, service),
            Forward(None, None, owner(smep, service))]


#: service.deploy: the generation kept, files, build context, image, (preflight and) compose
#: project (and its health gate), forwards.
DEPLOY = (generation, files, upload, image, up, forwards)
#: service.deploy --pull: every tracked image pulled first, then the same (the generation is
#: kept after the pull, which changes no running container, so a new image is a new version).
DEPLOY_PULL = (pull, generation, files, upload, image, up, forwards)


def deploy_steps(pull_images: bool) -> tuple:
    return DEPLOY_PULL if pull_images else DEPLOY


#: service.remove: compose down, then the service's folder, generations and forwards.
REMOVE = (down, removed)
