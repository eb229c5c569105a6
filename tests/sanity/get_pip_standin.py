"""Stand-in for ansible-test's pip bootstrap (get-pip from ci-files.testing.ansible.com, unreachable here).

ansible-test runs it as ``python get_pip.py [pip options] pip==X ...`` inside a fresh venv; this installs
the bundled pip with ensurepip, then the requested packages from the configured index (PyPI).
bin/kit sanity copies it to ~/.ansible/test/cache/ under the name ansible-test looks for.
"""

import subprocess
import sys

subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"])
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", *args])
