"""The words the portal's script shows, translated on the server into the page's language
and handed to the script with the page (no translation machinery runs in the browser)."""

from __future__ import annotations

from django.utils.translation import gettext as _


def script_strings() -> dict[str, str]:
    """portal.js's strings in the active language ({name} marks are filled in there)."""
    return {
        "error_generic": _("Something went wrong. Please try again."),
        "error_network": _("The connection was lost. Check your network and try again."),
        "copied": _("Copied"),
        "copy_failed": _("Could not copy the text."),
        "copy": _("Copy"),
        "like": _("Like"),
        "dislike": _("Dislike"),
        "thanks": _("Thanks for your feedback."),
        "rating_removed": _("Rating removed."),
        "choose": _("Choose…"),
        "field_required": _("{name} is required."),
        "remove_file": _("Remove {name}"),
        "too_many_files": _("At most {n} files per message."),
        "file_too_large": _("{name} is larger than {mb} MB."),
        "still_uploading": _("Wait until the files have finished uploading."),
        "suggested": _("Suggested questions"),
        "used_tool": _("Used {tool}"),
        "thinking": _("Thinking"),
        "sources": _("Sources ({n})"),
        "source": _("Source"),
        "new_chat": _("New chat"),
        "rename_named": _("Rename {name}"),
        "rename_prompt": _("New name for this conversation:"),
        "delete_named": _("Delete {name}"),
        "delete_confirm": _("Delete the conversation “{name}”?"),
        "status_running": _("Running"),
        "status_succeeded": _("Done"),
        "status_failed": _("Failed"),
        "status_exception": _("Failed"),
        "status_stopped": _("Stopped"),
        "sign_in": _("Sign in"),
        "code_sent": _("We sent a code to your e-mail address. Enter it below."),
    }
