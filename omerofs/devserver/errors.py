"""OMERO exceptions as the devserver raises them (``ome.conditions`` names)."""

from __future__ import annotations

import omero
import omero.all


def _err(cls: type, message: str) -> Exception:
    e = cls()
    e.message = message
    e.serverExceptionClass = "ome.conditions." + cls.__name__
    return e


def api_usage(message: str) -> Exception:
    return _err(omero.ApiUsageException, message)


def validation(message: str) -> Exception:
    return _err(omero.ValidationException, message)


def security(message: str) -> Exception:
    return _err(omero.SecurityViolation, message)


def internal(message: str) -> Exception:
    return _err(omero.InternalException, message)


def group_security(message: str) -> Exception:
    return _err(omero.GroupSecurityViolation, message)


def read_only_group_security(message: str) -> Exception:
    return _err(omero.ReadOnlyGroupSecurityViolation, message)
