"""Help text shared by the tasks' arguments."""

MACHINE = "machine name from the inventory, e.g. gazette"
ENV = "environment: prod, test, dev, staging, demo, qa, uat, preview, canary or local"
SHEET = "sheet name, e.g. dynamicalsystem"
SERVICE = "catalog service the machine runs (templates/services/NAME), e.g. hello"
DRY = "show each step and whether it would change anything; change nothing"

COMMON = {"machine": MACHINE, "env": ENV, "dry": DRY}
