"""The whole flow on the built-in lab, run twice so the second run shows that nothing changes.

``inv demo --kernel`` runs it on the kernel hosts instead: gazette on homelab4 (systemd, the
kernel NFS client) against ds920 (the kernel NFS server), both booted in QEMU.
"""
import os
import time
import urllib.request

from invoke import task

import tinsnip_lab as lab
from tinsnip_lab import settings as lab_settings
from tinsnip_tasks.collections import machine as machine_tasks
from tinsnip_tasks.collections import nas as nas_tasks
from tinsnip_tasks.collections import service as service_tasks
from tinsnip_tasks.core.inventory import load_inventory


#: The demo's homelab on the kernel hosts: one sheet on ds920, gazette on homelab4.
KERNEL_INVENTORY = """\
# Written by `inv demo --kernel`: the demo's homelab on the lab's kernel hosts.
sheets:
  dynamicalsystem:
    nas: ds920
    volume: /volume1
    docker:   # the machine users' daemons pull through the lab's registry
      registry_mirrors: [http://REGISTRY]
      insecure_registries: [REGISTRY]
nas:
  ds920: {host: ds920}
machines:
  gazette:
    sheet: dynamicalsystem
    host: homelab4
    environments: [prod, test]
    services:
      hello: {http: 0}
"""


@task(help={"keep": "leave the lab running afterwards (default: yes, so you can look around)",
            "machine": "machine to set up (default gazette)",
            "env": "environment (default prod)",
            "service": "catalog service to deploy (default hello)",
            "kernel": "run it on the kernel hosts: gazette on homelab4 against ds920, both with "
                      "their own kernel in QEMU (booted first: about a minute or two)"})
def demo(c, machine="gazette", env="prod", service="hello", keep=True, kernel=False):
    """Bring up the lab, set up NAS, machine and service, check them, and run it all again."""
    os.environ["TINSNIP_LAB"] = "1"
    if kernel:
        path = lab.lab_dir() / "kernel-inventory.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(KERNEL_INVENTORY.replace(
            "REGISTRY", f"{lab_settings.REGISTRY_HOST}:{lab_settings.REGISTRY_PORT}"))
        c.config.tinsnip.inventory = str(path)
    if not lab.is_up() or (kernel and not lab_settings.kernel_enabled()):
        print("== lab.up" + (" --kernel" if kernel else "")
              + " (the first time builds the Debian images: a few minutes)")
        lab.up(kernel=kernel)
    c.config.tinsnip.update(lab.tinsnip_settings())  # every task below reaches the lab only
    inv = load_inventory(c.config.tinsnip.inventory)
    for round_ in ("first run", "second run: nothing should change"):
        print(f"\n######## {round_}")
        started = time.monotonic()
        nas_tasks.station(c, sheet=inv.sheet_of(machine).name)
        nas_tasks.setup(c, machine=machine, env=env)
        machine_tasks.setup(c, machine=machine, env=env)
        service_tasks.deploy(c, machine=machine, env=env, service=service)
        print(f"######## {round_} took {time.monotonic() - started:.1f}s")
    machine_tasks.status(c, machine=machine, env=env)
    host = inv.machine(machine).host
    port = inv.smep(machine, env).ports[0]
    url = f"http://{lab.LAB_HOSTS[host]}:{port}/"
    body = urllib.request.urlopen(url, timeout=10).read().decode().strip()
    print(f"\n{url} answers: {body}")
    print(f"Look around: ssh -F {lab.ssh_config_path()} {host}   |   curl {url}")
    if not keep:
        lab.down()
