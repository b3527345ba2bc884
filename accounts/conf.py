"""Sign-in configuration read from the environment (imported by portal.settings, so no models here).

`oidc_apps()` turns OIDC_* variables into an allauth OpenID Connect app; `ldap_settings()` turns
AUTH_LDAP_* variables into django-auth-ldap settings. Both are documented in README "Accounts".
"""
from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured

from portal.env import env_bool, env_int, env_list, env_str

GROUPS_SOURCES = ("auto", "userinfo", "id_token")


def oidc_apps() -> list[dict[str, Any]]:
    """The OpenID Connect app configured by env (none when OIDC_SERVER_URL is unset).

    Admins can add more (or configure the only one) as a "Social application" in the admin, with
    provider "OpenID Connect" and the same keys in its settings JSON.
    """
    server_url = env_str("OIDC_SERVER_URL")
    if not server_url:
        return []
    client_id = env_str("OIDC_CLIENT_ID")
    if not client_id:
        raise ImproperlyConfigured("OIDC_SERVER_URL is set but OIDC_CLIENT_ID is empty.")
    source = env_str("OIDC_GROUPS_SOURCE", "auto")
    if source not in GROUPS_SOURCES:
        raise ImproperlyConfigured(f"OIDC_GROUPS_SOURCE must be one of {', '.join(GROUPS_SOURCES)}, got {source!r}")
    return [
        {
            "provider_id": env_str("OIDC_PROVIDER_ID", "sso"),
            "name": env_str("OIDC_BUTTON_LABEL", "Company SSO"),
            "client_id": client_id,
            "secret": env_str("OIDC_CLIENT_SECRET"),
            "settings": {
                "server_url": server_url,
                "scope": env_list("OIDC_SCOPES", ["openid", "profile", "email"]),
                "groups_claim": env_str("OIDC_GROUPS_CLAIM", "groups"),
                "groups_source": source,
                "oauth_pkce_enabled": env_bool("OIDC_PKCE", True),
                **({"token_auth_method": m} if (m := env_str("OIDC_TOKEN_AUTH_METHOD")) else {}),
            },
        }
    ]


LDAP_GROUP_TYPES = (
    "groupOfNames",
    "groupOfUniqueNames",
    "nestedGroupOfNames",
    "posixGroup",
    "activeDirectory",
    "nestedActiveDirectory",
    "memberOf",
)


def ldap_settings() -> dict[str, Any]:
    """django-auth-ldap settings from AUTH_LDAP_* variables; only AUTH_LDAP_SERVER_URI when unset."""
    uri = env_str("AUTH_LDAP_SERVER_URI")
    if not uri:
        return {"AUTH_LDAP_SERVER_URI": ""}
    try:
        import ldap
        from django_auth_ldap import config
    except ImportError as exc:  # python-ldap needs libldap2-dev/libsasl2-dev to build
        raise ImproperlyConfigured(f"AUTH_LDAP_SERVER_URI is set but python-ldap is missing: {exc}") from exc

    group_type = env_str("AUTH_LDAP_GROUP_TYPE", "groupOfNames")
    if group_type not in LDAP_GROUP_TYPES:
        raise ImproperlyConfigured(
            f"AUTH_LDAP_GROUP_TYPE must be one of {', '.join(LDAP_GROUP_TYPES)}, got {group_type!r}"
        )
    # OpenLDAP's memberOf is operational: returned only when asked for by name (AD sends it anyway).
    attrlist = ["*", "memberOf"] if group_type == "memberOf" else None
    user_base = env_str("AUTH_LDAP_USER_SEARCH_BASE")
    user_dn_template = env_str("AUTH_LDAP_USER_DN_TEMPLATE")
    if not user_base and not user_dn_template:
        raise ImproperlyConfigured(
            "Set AUTH_LDAP_USER_SEARCH_BASE (or AUTH_LDAP_USER_DN_TEMPLATE) with AUTH_LDAP_SERVER_URI."
        )
    out: dict[str, Any] = {
        "AUTH_LDAP_SERVER_URI": uri,
        "AUTH_LDAP_BIND_DN": env_str("AUTH_LDAP_BIND_DN"),
        "AUTH_LDAP_BIND_PASSWORD": env_str("AUTH_LDAP_BIND_PASSWORD"),
        "AUTH_LDAP_START_TLS": env_bool("AUTH_LDAP_START_TLS", False),
        "AUTH_LDAP_USER_ATTR_MAP": {
            "first_name": env_str("AUTH_LDAP_ATTR_FIRST_NAME", "givenName"),
            "last_name": env_str("AUTH_LDAP_ATTR_LAST_NAME", "sn"),
            "email": env_str("AUTH_LDAP_ATTR_EMAIL", "mail"),
            "name": env_str("AUTH_LDAP_ATTR_DISPLAY_NAME", "displayName"),
        },
        # Attribute stored as User.ldap_id ({{LIBRECHAT_USER_LDAPID}}); empty: the user's DN.
        "AUTH_LDAP_ID_ATTR": env_str("AUTH_LDAP_ID_ATTR", "uid"),
        "AUTH_LDAP_ALWAYS_UPDATE_USER": True,
        "AUTH_LDAP_FIND_GROUP_PERMS": False,
        "AUTH_LDAP_MIRROR_GROUPS": False,
        "AUTH_LDAP_CACHE_TIMEOUT": 0,
    }
    if user_dn_template:
        out["AUTH_LDAP_USER_DN_TEMPLATE"] = user_dn_template
    else:
        out["AUTH_LDAP_USER_SEARCH"] = config.LDAPSearch(
            user_base, ldap.SCOPE_SUBTREE, env_str("AUTH_LDAP_USER_SEARCH_FILTER", "(uid=%(user)s)"), attrlist
        )
    if attrlist:
        out["AUTH_LDAP_USER_ATTRLIST"] = attrlist

    options: dict[int, Any] = {
        ldap.OPT_NETWORK_TIMEOUT: env_int("AUTH_LDAP_TIMEOUT", 5),
        ldap.OPT_TIMEOUT: env_int("AUTH_LDAP_TIMEOUT", 5),
        ldap.OPT_REFERRALS: 0,  # AD: do not chase referrals with the bind credentials
    }
    require_cert = env_str("AUTH_LDAP_TLS_REQUIRE_CERT", "demand")
    levels = {"demand": ldap.OPT_X_TLS_DEMAND, "allow": ldap.OPT_X_TLS_ALLOW, "never": ldap.OPT_X_TLS_NEVER}
    if require_cert not in levels:
        raise ImproperlyConfigured(f"AUTH_LDAP_TLS_REQUIRE_CERT must be demand, allow or never, got {require_cert!r}")
    options[ldap.OPT_X_TLS_REQUIRE_CERT] = levels[require_cert]
    if ca_file := env_str("AUTH_LDAP_TLS_CA_FILE"):
        options[ldap.OPT_X_TLS_CACERTFILE] = ca_file
    options[ldap.OPT_X_TLS_NEWCTX] = 0  # apply the TLS options above to this connection
    out["AUTH_LDAP_CONNECTION_OPTIONS"] = options

    out["AUTH_LDAP_GROUP_TYPE"] = _group_type(group_type, config)
    # memberOf reads the user entry; django-auth-ldap still wants a search, so it gets the user base.
    group_base = env_str("AUTH_LDAP_GROUP_SEARCH_BASE") or (user_base if group_type == "memberOf" else "")
    if group_base:
        default_filter = {
            "groupOfNames": "(objectClass=groupOfNames)",
            "nestedGroupOfNames": "(objectClass=groupOfNames)",
            "groupOfUniqueNames": "(objectClass=groupOfUniqueNames)",
            "posixGroup": "(objectClass=posixGroup)",
        }.get(group_type, "(objectClass=group)")
        out["AUTH_LDAP_GROUP_SEARCH"] = config.LDAPSearch(
            group_base, ldap.SCOPE_SUBTREE, env_str("AUTH_LDAP_GROUP_SEARCH_FILTER", default_filter)
        )
    else:
        raise ImproperlyConfigured(f"AUTH_LDAP_GROUP_TYPE={group_type} needs AUTH_LDAP_GROUP_SEARCH_BASE.")
    flags = {}
    if staff := env_str("AUTH_LDAP_STAFF_GROUP"):
        flags["is_staff"] = staff
    if superuser := env_str("AUTH_LDAP_SUPERUSER_GROUP"):
        flags["is_superuser"] = superuser
    out["AUTH_LDAP_USER_FLAGS_BY_GROUP"] = flags
    if required := env_str("AUTH_LDAP_REQUIRE_GROUP"):
        out["AUTH_LDAP_REQUIRE_GROUP"] = required
    return out


def _group_type(name: str, config: Any) -> Any:
    if name == "memberOf":
        from accounts.ldap_groups import MemberOfGroupType

        return MemberOfGroupType()
    return {
        "groupOfNames": config.GroupOfNamesType,
        "groupOfUniqueNames": config.GroupOfUniqueNamesType,
        "nestedGroupOfNames": config.NestedGroupOfNamesType,
        "posixGroup": config.PosixGroupType,
        "activeDirectory": config.ActiveDirectoryGroupType,
        "nestedActiveDirectory": config.NestedActiveDirectoryGroupType,
    }[name]()
