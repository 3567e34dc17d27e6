"""Errors: one type per kind of failure, each with a message a person can act on."""


class TinsnipError(Exception):
    """Base of every error tinsnip raises on purpose.

    ``host`` and ``step`` are filled in by the runner that ran the step (:class:`ops.base.Host`);
    a resource or plan never names its host.
    """

    host: str | None = None
    step: str | None = None


class InputError(TinsnipError, ValueError):
    """A name, number or option given by the user is not acceptable."""


class SmepError(InputError):
    """A SMEP number (sheet, machine, environment, port) cannot be computed or is out of range."""


class InventoryError(TinsnipError):
    """The inventory file is missing, malformed or inconsistent."""

    def __init__(self, path, key, problem):
        self.path, self.key, self.problem = str(path), key, problem
        where = f"{self.path}: {key}: " if key else f"{self.path}: "
        super().__init__(where + problem)


class TemplateError(TinsnipError):
    """A template is missing or refers to a variable that was not given."""


class RemoteError(TinsnipError):
    """A command on a host failed; carries the host, the command and its output."""

    def __init__(self, host, step, command, exit_code, stderr):
        self.host, self.step, self.command = host, step, command
        self.exit_code, self.stderr = exit_code, stderr
        tail = (stderr or "").strip().splitlines()[-3:]
        super().__init__(
            f"{host}: step '{step}' failed (exit {exit_code}): {command}"
            + ("\n  " + "\n  ".join(tail) if tail else "")
        )


class LeftBehind(TinsnipError):
    """Something of a machine-environment is still on its host where nothing should be (a
    process, a mount namespace holding its export); the message names it and what to do."""


class FactError(TinsnipError):
    """A host's answer to a fact read is not what its parser understands (odd output, bytes
    that are not text, a thing that vanished while it was being read)."""

    def __init__(self, what, problem):
        self.what, self.problem = what, problem
        super().__init__(what)

    def __str__(self):
        where = f"{self.host}: step '{self.step}' failed: " if self.host else ""
        return (f"{where}cannot read the state of {self.what}: "
                f"{type(self.problem).__name__}: {self.problem}")


class ConflictError(TinsnipError):
    """A host holds something tinsnip would have to overwrite or take over (a user with another
    UID, a file where a folder belongs, another mount on the mount point); it refuses to."""

    def __init__(self, what):
        self.what = what
        super().__init__(what)

    def __str__(self):
        where = f"{self.host}: " if self.host else ""
        return f"{where}{self.what}; fix it by hand or choose another name, then run again"


class UnreachableError(TinsnipError):
    """A host could not be reached over SSH (address, key, or host key check)."""

    def __init__(self, host, reason):
        self.host, self.reason = host, reason
        super().__init__(f"{host}: cannot connect over SSH: {reason}")


class PreflightError(TinsnipError):
    """The preflight refused a service before it started; carries every finding."""

    def __init__(self, host, step, findings):
        self.host, self.step, self.findings = host, step, list(findings)
        super().__init__(f"{host}: the preflight refused the deploy, nothing was started:\n  "
                         + "\n  ".join(str(f) for f in self.findings))


class HealthError(TinsnipError):
    """A service a deploy started did not become healthy in time; says what was done about it
    (rolled back, or left stopped) and what its containers said."""
