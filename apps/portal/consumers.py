"""The portal's WebSocket, `/ws/c/<code>/`: the Service API's socket protocol, opened with the
visitor's passport (`{"authorization": "Bearer <passport>"}` as the first message) instead of
an `app-` key; `user` in actions is ignored, the passport says who it is."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from tenants import audit, keys
from tenants.aio import database
from tenants.context import set_current_tenant
from tenants.exceptions import Unauthorized, WeftError

from .. import limits
from ..api.service.base import Caller
from ..consumers import ServiceApiConsumer, database_work
from ..models import EndUser, Site, Source
from . import passports
from .api import find_site


class PortalConsumer(ServiceApiConsumer):
    """One visitor's socket to one site."""

    site: Site
    visitor: passports.Visitor

    async def _authorize(self, header: Any) -> bool:
        try:
            token = keys.bearer_token(header) if isinstance(header, str) else None
            if not token:
                raise Unauthorized("Sign in to this site first.", code="passport_required")
            code = self.scope["url_route"]["kwargs"]["code"]
            async with database_work():
                site = await database(find_site)(code)
                visitor = await database(passports.visitor_of)(site, token)
            if visitor is None:
                raise Unauthorized(
                    "Your access to this site has ended: sign in again.", code="passport_expired"
                )
        except WeftError as exc:
            await self._error(exc)
            await self.close(code=4000 + exc.status)
            return False
        self.site, self.visitor, self.app = site, visitor, site.app
        set_current_tenant(site.tenant)
        audit.set_actor(
            audit.request_actor(
                self.stand_in,
                label=f"portal visitor {visitor.name or visitor.id[:8]}",
                source="portal",
            )
        )
        await self.send_json({"event": "ready", "app_id": str(site.app_id), "mode": site.app.mode})
        return True

    async def _caller(self, user: Any) -> Caller:
        await limits.per_minute(
            f"end-user:{self.site.app_id}:portal:{self.visitor.id}",
            self.site.app.end_user_rpm or settings.WEFT_APP_END_USER_RPM,
            what="you",
        )
        return Caller(
            app=self.site.app,
            user=self.visitor.id,
            kind=EndUser.Kind.BROWSER,
            source=Source.PORTAL,
        )
