"""An LDAP group type for directories that list a user's groups on the user entry (`memberOf`).

Active Directory and OpenLDAP with the memberof overlay keep `memberOf` on each user, so group
membership needs no search at all. Kept apart from accounts.ldap because settings import it.
"""
from __future__ import annotations

from typing import Any

import ldap.dn
from django_auth_ldap.config import LDAPGroupType


class MemberOfGroupType(LDAPGroupType):
    def __init__(self, attr: str = "memberOf") -> None:
        super().__init__(name_attr="cn")
        self.attr = attr

    def user_groups(self, ldap_user: Any, group_search: Any) -> list[tuple[str, dict[str, list[str]]]]:
        groups = []
        for dn in ldap_user.attrs.get(self.attr, []):
            try:
                rdn = ldap.dn.str2dn(dn)[0][0]
            except (ldap.DECODING_ERROR, IndexError):
                continue
            groups.append((dn.lower(), {"cn": [rdn[1]]}))
        return groups

    def is_member(self, ldap_user: Any, group_dn: str) -> bool:
        return group_dn.lower() in {dn.lower() for dn in ldap_user.attrs.get(self.attr, [])}
