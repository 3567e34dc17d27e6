"""The whole flow on the built-in lab, run twice so the second run shows that nothing changes."""
import os
import time
import urllib.request

from invoke import task

import tinsnip_lab as lab
from tinsnip_tasks.collections import machine as machine_tasks
from tinsnip_tasks.collections import nas as nas_tasks
from tinsnip_tasks.collections import service as service_tasks
from tinsnip_tasks.core.inventory import load_inventory


@task(help={"keep": "leave the lab running afterwards (default: yes, so you can look around)",
            "machine": "machine to set up (default gazette)",
            "env": "environment (default prod)",
            "service": "catalog service to deploy (default hello)"})
def demo(c, machine="gazette", env="prod", service="hello", keep=True):
    """Bring up the lab, set up NAS, machine and service, check them, and run it all again."""
    os.environ["TINSNIP_LAB"] = "1"
    c.config.tinsnip.update(lab.tinsnip_settings())  # every task below reaches the lab only
    inv = load_inventory(c.config.tinsnip.inventory)
    if not lab.is_up():
        print("== lab.up (the first time builds a Debian root filesystem: about a minute)")
        lab.up()
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
