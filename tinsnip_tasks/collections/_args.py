"""Help text shared by the tasks' arguments."""

MACHINE = "machine name from the inventory, e.g. gazette"
ENV = ("environment: prod, test, dev, staging, demo, qa, uat, preview, canary or local "
       "(default: the config's tinsnip.env)")
SHEET = "sheet name, e.g. dynamicalsystem"
SERVICE = "catalog service the machine runs (templates/services/NAME), e.g. hello"
DRY = "show each step and whether it would change anything (with a diff of files); change nothing"
JSON = "print the recap as one JSON document on stdout (step lines go to stderr)"
VERBOSE = "show every command run on a host and its output, and a diff of every file changed"

#: Flags of every task that touches hosts.
OUTPUT = {"json": JSON, "verbose": VERBOSE}
COMMON = {"machine": MACHINE, "env": ENV, "dry": DRY, **OUTPUT}
WAIT = ("seconds to wait for the service to be healthy after compose up before bringing back "
        "its previous generation (default: the service's wait: setting, else 60; 0: no wait)")
