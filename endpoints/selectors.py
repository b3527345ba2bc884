"""Reads of the configuration for the UI: what a user may chat with."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.db.models import Prefetch

from endpoints.models import Endpoint, EndpointModel, ModelSpec, UserProviderKey
from portal.models import PortalSettings

if TYPE_CHECKING:
    from accounts.models import User


@dataclass(frozen=True)
class UsableEndpoint:
    endpoint: Endpoint
    models: list[str]  # the listed models, in the selector's order
    rows: list[EndpointModel] = field(default_factory=list)  # the same models (capabilities, rates)


@dataclass(frozen=True)
class Offer:
    """The model specs and, when free choice is allowed, the endpoints and models a user may use."""

    specs: list[ModelSpec]
    endpoints: list[UsableEndpoint]
    free_choice: bool  # may pick an endpoint and model, not only a spec
    enforce: bool = False  # modelSpecs.enforce: chat only through specs
    prioritize: bool = True  # modelSpecs.prioritize: the default spec wins over the last selection


def offer_for(*, user: User) -> Offer:
    """What `user`'s role lets them use, by the rules of a chat turn's permission check
    (chat.services): enabled specs the role may see (none selected: all) on enabled endpoints; and,
    unless specs are enforced or the role may not choose models freely, the enabled endpoints the
    role may use (none selected: all) with their listed models."""
    role = user.role
    specs = ModelSpec.objects.filter(enabled=True, endpoint__enabled=True).select_related("endpoint")
    allowed_specs = role.allowed_model_specs.all() if role else ModelSpec.objects.none()
    if role is not None and allowed_specs.exists():
        specs = specs.filter(pk__in=allowed_specs)
    portal = PortalSettings.load()
    free_choice = role is not None and role.can_choose_models and not portal.model_specs_enforce
    endpoints: list[UsableEndpoint] = []
    if free_choice:
        rows = Endpoint.objects.enabled().prefetch_related(
            Prefetch("models", queryset=EndpointModel.objects.filter(listed=True))
        )
        allowed_endpoints = role.allowed_endpoints.all()
        if allowed_endpoints.exists():
            rows = rows.filter(pk__in=allowed_endpoints)
        endpoints = [
            UsableEndpoint(endpoint, [m.name for m in endpoint.models.all()], list(endpoint.models.all()))
            for endpoint in rows
        ]
    return Offer(
        specs=list(specs), endpoints=endpoints, free_choice=free_choice,
        enforce=portal.model_specs_enforce, prioritize=portal.model_specs_prioritize,
    )


def keyed_endpoints(*, user: User) -> list[Endpoint]:
    """The endpoints `user` may use (freely or through a spec) that take the user's own key or
    base URL, in the selector's order."""
    offer = offer_for(user=user)
    seen: dict[int, Endpoint] = {}
    for endpoint in [usable.endpoint for usable in offer.endpoints] + [spec.endpoint for spec in offer.specs]:
        if endpoint.user_provides_key or endpoint.user_provides_base_url:
            seen.setdefault(endpoint.pk, endpoint)
    return list(seen.values())


def provider_keys(*, user: User) -> list[UserProviderKey]:
    """Which endpoints `user` stored a key for (the rows; never show their secrets)."""
    return list(UserProviderKey.objects.filter(user=user).select_related("endpoint").order_by("endpoint__name"))
