"""`make test` on a machine without the optional components (README, "Two commands"): a test that
needs python-ldap skips with the reason; under CI=true it fails instead of skipping."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LDAP_TEST = (
    "tests/accounts/test_ldap.py::test_an_unreachable_directory_gives_a_clear_error_and_local_admins_still_sign_in"
)

# Loaded by Python at start-up (sitecustomize on PYTHONPATH): python-ldap behaves as not installed.
HIDE_LDAP = '''
import sys

class HideLdap:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"ldap", "django_auth_ldap"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, HideLdap())
'''


def run_without_python_ldap(tmp_path: Path, *, ci: bool) -> subprocess.CompletedProcess:
    (tmp_path / "sitecustomize.py").write_text(HIDE_LDAP)
    env = {k: v for k, v in os.environ.items()
           if k not in {"CI", "DATABASE_URL", "REDIS_URL", "PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER"}}
    # its own SQLite test database, so it never touches the one this run uses
    env.update(PYTHONPATH=str(tmp_path), ATRIUM_DATA_DIR=str(tmp_path / "var"), CI="true" if ci else "")
    return subprocess.run(
        [sys.executable, "-m", "pytest", LDAP_TEST, "-q", "-rs", "-p", "no:cacheprovider"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )


def test_without_python_ldap_the_ldap_tests_skip_with_the_reason(tmp_path):
    result = run_without_python_ldap(tmp_path, ci=False)

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "1 skipped" in result.stdout
    assert "is not installed" in result.stdout
    assert "ModuleNotFoundError" not in result.stdout


def test_without_python_ldap_the_ldap_tests_fail_in_ci(tmp_path):
    result = run_without_python_ldap(tmp_path, ci=True)

    assert result.returncode != 0
    assert "skipped" not in result.stdout
    assert "CI must install it" in result.stdout
