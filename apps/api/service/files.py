"""`POST /files/upload`: a file for the end user's next messages or runs (multipart `file`
and `user`), typed by its content; 413 `file_too_large`, 415 `unsupported_file_type`. And
`GET /files/{id}/preview`: the file back, to the end user who sent it."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.utils.http import content_disposition_header

from tenants.exceptions import InvalidInput, NotFound

from ...services.files import upload_create, upload_read
from .base import Caller, ok, uses_user
from .shapes import upload_json


@uses_user("form")
def upload(request: HttpRequest, caller: Caller) -> HttpResponse:
    """Upload a file (multipart `file` and `user`) for the end user's messages or runs."""
    if len(request.FILES.getlist("file")) > 1 or len(request.FILES) > 1:
        raise InvalidInput("Only one file is allowed.", code="too_many_files")
    created = upload_create(
        app=caller.app, end_user=caller.end_user(), uploaded=request.FILES.get("file")
    )
    return ok(upload_json(created), status=201)


@uses_user("query")
def preview(request: HttpRequest, caller: Caller, file_id: str) -> HttpResponse:
    """The bytes of a file the end user uploaded to this app (`as_attachment=true` to
    download it); 404 for anyone else's."""
    end_user = caller.known_end_user()
    if end_user is None:
        raise NotFound("File not found.")
    upload, data = upload_read(upload_id=file_id, end_user=end_user)
    if upload.app_id != caller.app.pk:
        raise NotFound("File not found.")
    response = HttpResponse(data, content_type=upload.mime_type)
    attach = request.GET.get("as_attachment", "").lower() == "true"
    response["Content-Disposition"] = content_disposition_header(attach, upload.name) or "inline"
    response["Content-Length"] = str(len(data))
    response["X-Content-Type-Options"] = "nosniff"
    return response
