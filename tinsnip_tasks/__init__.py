"""tinsnip: SMEP-numbered service deployment onto a homelab, as Invoke/Fabric tasks."""

__version__ = "0.1.0"
