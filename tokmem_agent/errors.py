"""Exception hierarchy. Every error the library raises on purpose is a :class:`TokMemError`."""

from __future__ import annotations


class TokMemError(Exception):
    """Base class of all tokmem_agent errors."""


class ConfigError(TokMemError, ValueError):
    """A configuration value is invalid."""


class ModelLoadError(TokMemError):
    """The base model or tokenizer could not be loaded."""


class ModelMismatchError(TokMemError):
    """A memory bank does not fit the base model it is being attached to."""


class BankFormatError(TokMemError):
    """A memory bank directory is missing, corrupt or of an unknown format version."""


class DataFormatError(TokMemError, ValueError):
    """A training/eval record is malformed. Names the file, line and field."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 field: str | None = None):
        self.path, self.line, self.field = path, line, field
        where = ":".join(str(p) for p in (path, line) if p is not None)
        prefix = f"{where}: " if where else ""
        suffix = f" (field '{field}')" if field else ""
        super().__init__(f"{prefix}{message}{suffix}")


class SchemaError(TokMemError, ValueError):
    """A tool's JSON schema is invalid."""


class ToolNotFoundError(TokMemError, KeyError):
    """A tool name is unknown to the registry or has no memory token in the bank."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ToolCallError(TokMemError):
    """A tool call failed (invalid arguments, exception, timeout). Raised only in strict mode."""

    def __init__(self, message: str, *, kind: str = "error", tool: str | None = None):
        self.kind, self.tool = kind, tool
        super().__init__(message)


class GenerationError(TokMemError):
    """Generation went outside its budget (max steps, token budget). Raised only in strict mode."""
