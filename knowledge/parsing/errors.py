"""Why a document could not be parsed, in words a user can act on.

Every error carries a stable `code` (mapped to the API's error codes later) and a `reason`
that is shown as the document's error message in the console and the API.
"""

from __future__ import annotations

SUPPORTED = "PDF, DOCX, HTML, Markdown, CSV or plain text"


class ParseError(Exception):
    """Base of every error the parsing layer raises for bad input."""

    code = "parse_error"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class EmptyFile(ParseError):
    code = "empty_file"

    def __init__(self) -> None:
        super().__init__("The file is empty (0 bytes).")


class FileTooLarge(ParseError):
    code = "file_too_large"

    def __init__(self, *, size: int, max_bytes: int) -> None:
        super().__init__(
            f"The file is too large: {_human(size)}, the limit is {_human(max_bytes)}."
        )
        self.size = size
        self.max_bytes = max_bytes


class UnsupportedFileType(ParseError):
    code = "unsupported_file_type"

    def __init__(self, what: str, *, filename: str = "") -> None:
        named = f" (named {filename!r})" if filename else ""
        super().__init__(f"Unsupported file type: the file{named} is {what}. Upload {SUPPORTED}.")
        self.what = what


class BinaryFile(UnsupportedFileType):
    """Binary content under a text-like name (.txt, .md, .csv …): never read as text."""

    code = "binary_file"


class CorruptedFile(ParseError):
    code = "corrupted_file"

    def __init__(self, kind: str, detail: str = "") -> None:
        suffix = f" ({detail})" if detail else ""
        super().__init__(
            f"The {kind.upper()} file is damaged and cannot be read{suffix}. "
            "Open and save it again, or export a fresh copy."
        )
        self.kind = kind


class EncryptedFile(ParseError):
    code = "encrypted_file"

    def __init__(self, kind: str) -> None:
        super().__init__(
            f"The {kind} is password-protected. Remove the password and upload it again."
        )
        self.kind = kind


class NoTextFound(ParseError):
    code = "no_text"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)


def _human(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    value = size / 1024
    for unit in ("KB", "MB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"
