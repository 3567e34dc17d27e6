"""The lab's own error."""
from tinsnip_tasks.errors import TinsnipError


class LabError(TinsnipError):
    """The built-in lab could not be built, started or stopped."""
