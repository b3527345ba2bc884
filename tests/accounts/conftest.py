"""Real identity servers for the accounts tests, on loopback ephemeral ports.

- `oidc_idp`: panva's `oidc-provider` (tests/idp/server.mjs) under Node.js; `npm ci` runs first
  when tests/idp/node_modules is missing.
- `slapd_server`: Debian's OpenLDAP `slapd` started from a temporary directory with a seeded
  directory (users, groupOfNames groups, nested groups, memberOf maintained by the overlay).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from tests.optional import require_program

IDP_DIR = Path(__file__).resolve().parent.parent / "idp"
TESTSERVER = "http://testserver"
CLIENT_ID = "atrium-test"
CLIENT_SECRET = "atrium-test-secret-0123456789"
PROVIDER_IDS = ("corp", "sso")

IDP_USERS = [
    {"username": "alice", "password": "alice-pw", "sub": "sub-alice", "email": "alice@corp.example",
     "name": "Alice Archer", "groups": ["engineering", "everyone"]},
    {"username": "bob", "password": "bob-pw", "sub": "sub-bob", "email": "bob@corp.example",
     "name": "Bob Baker", "groups": ["everyone"]},
    {"username": "kate", "password": "kate-pw", "sub": "sub-kate", "email": "kate@corp.example",
     "name": "Kate Keycloak", "realm_access": {"roles": ["offline_access", "atrium-power"]}},
    {"username": "mallory", "password": "mallory-pw", "sub": "sub-mallory", "email": "mallory@corp.example",
     "name": "Mallory", "groups": ["everyone"], "tamper_id_token": True},
    {"username": "erin", "password": "erin-pw", "sub": "sub-erin", "email": "erin@corp.example",
     "name": "Erin Existing", "groups": ["engineering"]},
]


@dataclass
class IdP:
    issuer: str
    users_file: Path
    users: list[dict] = field(default_factory=list)
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET

    def set_user(self, username: str, **changes) -> None:
        for user in self.users:
            if user["username"] == username:
                user.update(changes)
        self.users_file.write_text(json.dumps(self.users))


def stop_process(proc: subprocess.Popen) -> None:
    """Ask a test server to exit; kill it if it hasn't within 10 s."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _wait_for_line(proc: subprocess.Popen, deadline: float) -> dict:
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                raise RuntimeError(f"the test IdP exited: {proc.stderr.read() if proc.stderr else ''}")
            continue
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError("the test IdP did not start in time")


@pytest.fixture(scope="session")
def oidc_idp(tmp_path_factory):
    for program in ("node", "npm"):
        require_program(program, reason="Node.js/npm are not installed: the OIDC tests need them (README, Accounts).")
    if not (IDP_DIR / "node_modules" / "oidc-provider").is_dir():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"], cwd=IDP_DIR, check=True, capture_output=True, timeout=300
        )
    tmp = tmp_path_factory.mktemp("idp")
    users = json.loads(json.dumps(IDP_USERS))
    users_file = tmp / "users.json"
    users_file.write_text(json.dumps(users))
    clients = [{
        "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
        "redirect_uris": [f"{TESTSERVER}/accounts/oidc/{pid}/login/callback/" for pid in PROVIDER_IDS],
        "token_endpoint_auth_method": "client_secret_post",
    }]
    env = {**os.environ, "IDP_USERS_FILE": str(users_file), "IDP_CLIENTS": json.dumps(clients)}
    proc = subprocess.Popen(["node", "server.mjs"], cwd=IDP_DIR, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        issuer = _wait_for_line(proc, time.monotonic() + 30)["issuer"]
        for _ in range(100):
            try:
                if httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield IdP(issuer=issuer, users_file=users_file, users=users)
    finally:
        stop_process(proc)


@pytest.fixture
def oidc_app(db, oidc_idp):
    """The IdP configured the admin way: a SocialApp row (provider OpenID Connect, id "corp")."""
    from allauth.socialaccount.models import SocialApp
    from django.contrib.sites.models import Site

    app = SocialApp.objects.create(
        provider="openid_connect", provider_id="corp", name="Corp SSO", client_id=CLIENT_ID, secret=CLIENT_SECRET,
        settings={"server_url": oidc_idp.issuer, "scope": ["openid", "profile", "email", "groups"],
                  "groups_claim": "groups"},
    )
    app.sites.add(Site.objects.get_current())
    return app


def _form_action(page: str) -> str:
    match = re.search(r'<form[^>]*action="([^"]+)"', page)
    assert match, f"no form on the IdP page: {page[:500]}"
    return match.group(1)


class SSOBrowser:
    """Plays the user's browser: Atrium through Django's test client, the IdP through httpx."""

    def __init__(self, client, idp: IdP) -> None:
        self.client = client
        self.idp = idp

    def start(self, provider_id: str = "corp") -> str:
        response = self.client.post(f"/accounts/oidc/{provider_id}/login/")
        assert response.status_code == 302, response.content[:500]
        return response["Location"]

    def authorize(self, authorize_url: str, username: str, password: str) -> str:
        """Sign in and consent at the IdP; returns the callback URL it redirects the browser to."""
        url = authorize_url
        with httpx.Client(follow_redirects=False, timeout=10) as browser:
            for _ in range(20):
                if url.startswith(TESTSERVER):
                    return url
                response = browser.get(url)
                if response.is_redirect:
                    url = urljoin(url, response.headers["location"])
                    continue
                assert response.status_code == 200, response.text[:500]
                action = urljoin(url, _form_action(response.text))
                data = {"login": username, "password": password} if action.endswith("/login") else {}
                response = browser.post(action, data=data)
                assert response.is_redirect, response.text[:500]
                url = urljoin(action, response.headers["location"])
        raise AssertionError("the IdP never redirected back to Atrium")

    def callback(self, callback_url: str):
        parts = urlsplit(callback_url)
        return self.client.get(f"{parts.path}?{parts.query}")

    def login(self, username: str, password: str, provider_id: str = "corp"):
        return self.callback(self.authorize(self.start(provider_id), username, password))


@pytest.fixture
def sso(client, oidc_idp):
    return SSOBrowser(client, oidc_idp)


# --- LDAP ----------------------------------------------------------------------------------------
SLAPD_MISSING = "slapd is not installed (apt-get install slapd ldap-utils; see README, Accounts)."
BASE = "dc=corp,dc=example"
ADMIN_DN = f"cn=admin,{BASE}"
ADMIN_PW = "directory-admin-pw"
SERVICE_DN = f"cn=atrium,ou=services,{BASE}"
SERVICE_PW = "atrium-bind-pw"

SEED_LDIF = f"""dn: {BASE}
objectClass: top
objectClass: dcObject
objectClass: organization
o: Corp
dc: corp

dn: ou=people,{BASE}
objectClass: organizationalUnit
ou: people

dn: ou=groups,{BASE}
objectClass: organizationalUnit
ou: groups

dn: ou=services,{BASE}
objectClass: organizationalUnit
ou: services

dn: {SERVICE_DN}
objectClass: simpleSecurityObject
objectClass: organizationalRole
cn: atrium
userPassword: {SERVICE_PW}
""" + "".join(
    f"""
dn: uid={uid},ou=people,{BASE}
objectClass: inetOrgPerson
uid: {uid}
cn: {given} {sn}
givenName: {given}
sn: {sn}
displayName: {given} {sn}
mail: {uid}@corp.example
userPassword: {uid}-ldap-pw
"""
    for uid, given, sn in [("lucy", "Lucy", "Lang"), ("dave", "Dave", "Dunn"), ("nina", "Nina", "Nest"),
                           ("oscar", "Oscar", "Outsider")]
)

# Added after slapd starts, so the memberof overlay writes memberOf on the members (as AD does).
GROUPS = [
    ("data-science", ["lucy"], []),
    ("all-staff", ["lucy", "dave", "nina"], []),
    ("atrium-admins", ["dave"], []),
    ("research", ["nina"], []),
    ("research-parent", [], ["research"]),  # nested: nina is in research, research is in research-parent
]


@dataclass
class Slapd:
    uri: str
    base: str
    directory: Path

    def set_members(self, group: str, members: list[str]) -> None:
        import ldap

        conn = ldap.initialize(self.uri)
        conn.simple_bind_s(ADMIN_DN, ADMIN_PW)
        dns = [f"uid={m},ou=people,{BASE}".encode() for m in members] or [ADMIN_DN.encode()]
        conn.modify_s(f"cn={group},ou=groups,{BASE}", [(ldap.MOD_REPLACE, "member", dns)])
        conn.unbind_s()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def slapd_server(python_ldap):
    ldap = python_ldap
    slapd = require_program("slapd", reason=SLAPD_MISSING, also=("/usr/sbin/slapd",))
    slapadd = require_program("slapadd", reason=SLAPD_MISSING, also=("/usr/sbin/slapadd",))
    tmp = Path(tempfile.mkdtemp(prefix="atrium-slapd-"))
    (tmp / "data").mkdir()
    conf = tmp / "slapd.conf"
    conf.write_text(f"""
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
pidfile {tmp}/slapd.pid
argsfile {tmp}/slapd.args
database mdb
maxsize 10485760
suffix "{BASE}"
rootdn "{ADMIN_DN}"
rootpw {ADMIN_PW}
directory {tmp}/data
overlay memberof
memberof-group-oc groupOfNames
memberof-member-ad member
memberof-memberof-ad memberOf
memberof-refint true
access to attrs=userPassword by self read by anonymous auth by * none
access to * by * read
""")
    (tmp / "seed.ldif").write_text(SEED_LDIF)
    subprocess.run([slapadd, "-f", str(conf), "-l", str(tmp / "seed.ldif")], check=True, capture_output=True)
    port = free_port()
    uri = f"ldap://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [slapd, "-f", str(conf), "-h", uri, "-d", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        conn = None
        for _ in range(100):
            try:
                conn = ldap.initialize(uri)
                conn.simple_bind_s(ADMIN_DN, ADMIN_PW)
                break
            except ldap.SERVER_DOWN:
                if proc.poll() is not None:
                    raise RuntimeError(f"slapd exited: {proc.stderr.read().decode() if proc.stderr else ''}") from None
                time.sleep(0.1)
        assert conn is not None
        for name, members, subgroups in GROUPS:
            dns = [f"uid={m},ou=people,{BASE}" for m in members] + [f"cn={g},ou=groups,{BASE}" for g in subgroups]
            conn.add_s(f"cn={name},ou=groups,{BASE}", [
                ("objectClass", [b"groupOfNames"]), ("cn", [name.encode()]),
                # groupOfNames needs a member: an empty group holds the admin entry.
                ("member", [dn.encode() for dn in dns] or [ADMIN_DN.encode()]),
            ])
        conn.unbind_s()
        yield Slapd(uri=uri, base=BASE, directory=tmp)
    finally:
        stop_process(proc)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def configure_ldap(settings, monkeypatch, python_ldap):
    """Point Atrium at a directory through the same AUTH_LDAP_* variables a deployment sets."""
    from accounts.conf import ldap_settings

    def configure(uri: str, **env: str) -> None:
        values = {
            "AUTH_LDAP_SERVER_URI": uri,
            "AUTH_LDAP_BIND_DN": SERVICE_DN,
            "AUTH_LDAP_BIND_PASSWORD": SERVICE_PW,
            "AUTH_LDAP_USER_SEARCH_BASE": f"ou=people,{BASE}",
            "AUTH_LDAP_GROUP_SEARCH_BASE": f"ou=groups,{BASE}",
            "AUTH_LDAP_TIMEOUT": "2",
            **env,
        }
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        for name, value in ldap_settings().items():
            setattr(settings, name, value)
        settings.AUTHENTICATION_BACKENDS = [*settings.AUTHENTICATION_BACKENDS, "accounts.ldap.AtriumLDAPBackend"]

    return configure


@pytest.fixture(autouse=True)
def _fresh_cache():
    """allauth keeps rate limits and used TOTP codes in the cache: each test starts clean."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()
