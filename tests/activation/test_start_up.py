"""A process that never delivers over SFTP (every manage.py command, worker and web server) does not import asyncssh
(~0.27 s with fido2, at every start-up before session 11): it is imported by the transport on first use."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.cli import ROOT


def test_django_setup_leaves_asyncssh_unloaded() -> None:
    probe = (
        "import sys, django; django.setup(); import activation.delivery, activation.admin; "
        "print('asyncssh' in sys.modules, 'fido2' in sys.modules)"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "p360.settings"}
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert done.stdout.split()[-2:] == ["False", "False"]
