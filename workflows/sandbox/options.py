"""Sizes and limits of a sandbox pool. Read from Django settings in the web or worker process,
then handed to the zygote as JSON (the zygote never imports Django)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

MIB = 1024 * 1024


@dataclass(frozen=True)
class SandboxOptions:
    """How many warm workers, and the limits each execution runs under."""

    workers: int = 2
    # Wall clock per execution (Dify's SANDBOX_WORKER_TIMEOUT); a caller may pass its own.
    timeout: float = 15.0
    # RLIMIT_CPU: the backstop when the wall clock cannot act (CPU time of all threads).
    cpu_seconds: int = 15
    # RLIMIT_AS for the whole process, the preloaded interpreter included (~40 MiB).
    memory_mb: int = 512
    max_open_files: int = 64
    # Threads, the main one included: a clear error instead of a thread failing to start
    # at the memory limit (CPython then waits forever for it).
    max_threads: int = 16
    max_file_mb: int = 16
    max_input_bytes: int = 4 * MIB
    max_output_bytes: int = 4 * MIB
    # What print() and warnings may leave per stream, for error messages.
    max_log_chars: int = 64 * 1024
    # As root, also chroot into the working folder. Landlock alone confines files when this
    # is off (a container without CAP_SYS_CHROOT) or when not running as root.
    chroot: bool = True

    @classmethod
    def from_settings(cls) -> SandboxOptions:
        """The options from `WEFT_SANDBOX_*` settings, defaults for the ones not set."""
        # Imported here: the zygote imports this package without site-packages (no Django).
        from django.conf import settings

        values = {
            field.name: getattr(settings, f"WEFT_SANDBOX_{field.name.upper()}")
            for field in dataclasses.fields(cls)
            if hasattr(settings, f"WEFT_SANDBOX_{field.name.upper()}")
        }
        return cls(**values)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> SandboxOptions:
        values: dict[str, Any] = json.loads(text)
        return cls(**values)
