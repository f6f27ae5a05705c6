"""Two-factor sign-in for the console: authenticator apps (TOTP) and backup codes.

Signing in takes two steps. The password step (ConsoleAuthenticationForm; django-axes counts
its failures) never logs in a user who has a confirmed device: it parks the user in the
session for a few minutes, and only a valid code on the second step calls `auth.login` and
`django_otp.login`. A user without a device whose active tenant requires 2FA is logged in
unverified and sent to enrolment; `WeftAdminSite.has_permission` refuses unverified users,
so enrolment and verification are the only pages they can reach. Codes are checked by the
django-otp devices themselves, whose throttling doubles the wait after each wrong code.
"""

from .lockout import lockout_response
from .policy import verification_required
from .views import login_view, urlpatterns

__all__ = ["lockout_response", "login_view", "urlpatterns", "verification_required"]
