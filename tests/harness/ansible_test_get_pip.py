"""Stand-in for the get-pip.py bootstrap script of ansible-test (written by tests/harness/devenv.py).

``ansible-test sanity --venv`` creates each sanity venv without pip and bootstraps pip by running
get-pip.py, which it downloads from ci-files.testing.ansible.com. That host does not answer
here, and ansible-test reads the script from ~/.ansible/test/cache/get_pip_<version>.py when it
is there, so devenv.py puts this file there instead.

ansible-test runs it with the venv's interpreter and get-pip's arguments, e.g.
``--disable-pip-version-check pip==24.2 --no-setuptools --no-wheel``. It installs the pip that
the standard library bundles (ensurepip), then the requested pip from the package index, as
get-pip.py would (``--no-setuptools``/``--no-wheel`` are get-pip options: neither is installed).
"""
from __future__ import annotations

import subprocess
import sys

MARKER = "llmops.langfuse ansible-test get-pip stand-in"


def main() -> int:
    args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
    subprocess.run([sys.executable, "-m", "ensurepip", "--default-pip"], check=True,
                   stdout=subprocess.DEVNULL)
    return subprocess.run([sys.executable, "-m", "pip", "install", "--upgrade", *args], check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
