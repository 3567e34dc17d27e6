"""tinsnip: SMEP-numbered service deployment onto a homelab, as Invoke/Fabric tasks."""
