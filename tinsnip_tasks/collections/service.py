"""Services: from the catalog or their own folder, checked before start, forwarded, removed.

``deploy`` writes the service's compose file and .env (and uploads its folder as the build
context), runs the preflight (``check``) and starts it as the machine user the seed's way.
"""
from pathlib import Path

from invoke import Collection, task
from invoke.exceptions import Exit

from ..core.inventory import load_inventory
from ..core.render import catalog, render
from ..errors import InputError, PreflightError, TinsnipError
from ..ops.base import q
from ..ops.docker import compose_as
from ..ops.forward import LIST_COMMAND, parse_rules
from ..plans import machine as machine_plan
from ..plans import preflight
from ..plans import service as plan
from ..run import Run
from . import _args

HELP = {**_args.COMMON, "service": _args.SERVICE}


def check_step(run: Run, smep, machine: str, service: str, rendered) -> None:
    """The preflight: refuse (PreflightError, nothing started) or note ok, with warnings."""
    h = run.machine_host(machine)
    d = plan.service_dir(smep, service)
    if h.conn is None:
        h.note("service.check", "unknown", "host not reachable; would run docker compose config")
        return
    exists = h.run(f"[ -f {q(d + '/docker-compose.yml')} ] && echo yes || true",
                   step="service.check").stdout.strip()
    if exists != "yes":  # a dry run before the first deploy: nothing to check on the host yet
        h.note("service.check", "unknown", f"{d} not written yet; checked at deploy")
        return
    home = machine_plan.home(smep)
    facts = preflight.parse(h.run(preflight.script(smep.user, smep.mount_point, d),
                                  step="service.check").stdout)
    missing = set()
    paths = preflight.bind_paths_to_check(facts, smep, home) if facts["config"] else []
    if paths:
        out = h.run(preflight.exists_script(smep.user, paths), step="service.check").stdout
        missing = {line.strip() for line in out.splitlines() if line.strip()}
    findings = preflight.evaluate(service, rendered.compose, facts, smep, home, missing)
    errors = [f for f in findings if f.level == "error"]
    for f in findings:
        if f.level == "warning":
            h.note("service.check", "warning", str(f))
    if errors:
        raise PreflightError(h.name, "service.check", errors)
    h.note("service.check", "ok", f"docker compose config of {service}: "
                                  f"{len(facts['config'].get('services', {}))} service(s) pass")


def forward_steps(run: Run, smep, machine: str, service: str) -> None:
    """The inventory's ``forward:`` entries of ``service`` for this environment."""
    h = run.machine_host(machine)
    want = plan.forwards(run.inv, smep, service, host=h.name)
    if want:
        h.converge("service.forward", want)


def deploy_steps(run: Run, smep, machine: str, service: str, rendered):
    h = run.machine_host(machine)
    h.converge("service.files", plan.files(smep, service, rendered, host=h.name))
    upload = plan.upload(smep, service, rendered, host=h.name)
    if upload:
        h.converge("service.context", upload)
    image = plan.image(smep, plan.service_entry(run.inv, machine, service), host=h.name)
    if image:
        h.converge("service.image", image)
    check_step(run, smep, machine, service, rendered)
    h.converge("service.up", plan.up(smep, service, rendered, host=h.name))
    forward_steps(run, smep, machine, service)


@task(help=HELP)
def deploy(c, machine, env, service, dry=False):
    """Upload a service's files (and build context), check them, start it with compose up -d."""
    with Run(c, dry=dry, title=f"service.deploy {machine} {env} {service}") as run:
        smep = run.smep(machine, env)
        rendered = plan.render_service(run.inv, smep, service)  # bad input fails here, first
        deploy_steps(run, smep, machine, service, rendered)


@task(help={"machine": _args.MACHINE, "env": _args.ENV, "service": _args.SERVICE})
def check(c, machine, env, service):
    """Run the preflight on the deployed files: docker compose config and tinsnip's rules."""
    with Run(c, title=f"service.check {machine} {env} {service}") as run:
        smep = run.smep(machine, env)
        rendered = plan.render_service(run.inv, smep, service)
        check_step(run, smep, machine, service, rendered)


@task(help={**_args.COMMON, "port": "standard port on the machine host, e.g. 389",
            "to": "port name of a service (from the inventory) or TIN_PORT index 0..9",
            "service": "the service that owns the forward (default: the one with the --to name)",
            "remove": "remove the forward of this port instead"})
def forward(c, machine, env, port, to="", service="", remove=False, dry=False):
    """Forward a standard port on the machine host to one of the environment's ten ports."""
    with Run(c, dry=dry, title=f"service.forward {machine} {env} {port}") as run:
        smep = run.smep(machine, env)
        service = service or plan.service_with_port(run.inv, machine, to)
        want = plan.forward_to(run.inv, smep, service, port, to, remove=remove,
                               host=run.inv.machine(machine).host)
        h = run.machine_host(machine)
        h.converge("service.forward", [want])


def remove_steps(run: Run, smep, machine: str, service: str):
    h = run.machine_host(machine)
    h.converge("service.down", plan.down(smep, service, host=h.name))
    h.converge("service.remove", plan.removed(smep, service, host=h.name))


@task(help=HELP)
def remove(c, machine, env, service, dry=False):
    """Stop a service (compose down) and remove its files and forwards; its NAS data stays."""
    with Run(c, dry=dry, title=f"service.remove {machine} {env} {service}") as run:
        smep = run.smep(machine, env)
        plan.check_runs(run.inv, smep, service)
        remove_steps(run, smep, machine, service)


@task(help={**HELP, "tail": "number of lines from the end of each container's log (default 100)"})
def logs(c, machine, env, service, tail=100, dry=False):
    """Print the service's compose logs, read as the machine user."""
    with Run(c, dry=dry, title=f"service.logs {machine} {env} {service}") as run:
        smep = run.smep(machine, env)
        plan.check_runs(run.inv, smep, service)
        h = run.machine_host(machine)
        command = compose_as(smep.user, smep.mount_point, plan.service_dir(smep, service),
                             f"logs --no-color --tail {int(tail)}")
        if dry or h.conn is None:
            h.out(f"    would run: {command}")
            return
        out = h.run(command, step="service.logs")
        h.out(out.stdout.rstrip("\n"))
        h.note("service.logs", "ok", f"{service}: {len(out.stdout.splitlines())} line(s)")


@task(help={"machine": _args.MACHINE, "env": _args.ENV, "service": _args.SERVICE,
            "output": "file to write (default: print it)"})
def makefile(c, machine, env, service, output=""):
    """Write the service Makefile (setup, deploy, setup-xdg-links, status targets)."""
    try:
        inv = load_inventory(catalog=catalog())
        inv.check_env(machine, env)
        if service not in inv.machine(machine).services:
            raise InputError(f"machine {machine} does not run {service!r} in {inv.path}")
    except TinsnipError as e:
        raise Exit(f"error: {e}", code=2)
    text = render("Makefile.j2", {"sheet": inv.sheet_of(machine).name, "machine": machine,
                                  "env": env, "service": service})
    if output:
        Path(output).write_text(text)
        print(f"wrote {output}")
    else:
        print(text, end="")


def forwards_listed(h) -> list[dict]:
    """The host's forward rules (for machine.status)."""
    return parse_rules(h.run(LIST_COMMAND, step="machine.status").stdout)


ns = Collection("service", deploy, check, forward, remove, logs, makefile)
