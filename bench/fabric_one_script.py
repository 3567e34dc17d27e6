"""The Fabric one-script equivalent of a no-op ``machine.setup``: one Fabric connection with
host keys checked (known_hosts from the SSH config, unknown keys refused), one command running
the given fact script, its output printed. bench/site.py times this process (wall and CPU)
against tinsnip's.

    python bench/fabric_one_script.py SSH_CONFIG HOST SCRIPT_FILE
"""
import os
import sys

from fabric import Config, Connection
from paramiko import RejectPolicy


def main(ssh_config: str, host: str, script_file: str) -> int:
    with open(script_file) as f:
        script = f.read()
    conn = Connection(host, config=Config(runtime_ssh_path=ssh_config))
    conn.client.set_missing_host_key_policy(RejectPolicy())
    for path in conn.ssh_config.get("userknownhostsfile", "").split():
        conn.client.load_host_keys(os.path.expanduser(path))
    result = conn.run(script, hide=True, warn=True, in_stream=False)
    sys.stdout.write(result.stdout)
    conn.close()
    return result.exited


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
