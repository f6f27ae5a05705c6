"""The portal: each published app's public page at `/c/<site code>/` (or on the tenant's own
domain), in the tenant's branding, talking to the app through the Service API's handlers
under `/c/<code>/api/` with a passport in place of an `app-` key."""
