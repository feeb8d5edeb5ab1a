"""The units this package runs, by MLSTACK_UNIT."""

from __future__ import annotations

from ..metrics import Registry
from ..settings import Settings
from ..unit import Unit


def build_unit(settings: Settings, registry: Registry) -> Unit:
    if settings.unit == "voice-interaction":
        from .voice import build

        return build(settings, registry)
    if settings.unit == "chat":
        from .chat import build

        return build(settings, registry)
    if settings.unit == "reasoning":
        from .reasoning import build

        return build(settings, registry)
    if settings.unit == "sequential-thinking":
        from .thinking import build

        return build(settings, registry)
    if settings.unit == "learning":
        from .learning import build

        return build(settings, registry)
    if settings.unit == "coordination":
        from .coordination import build

        return build(settings, registry)
    if settings.unit == "perception":
        from .perception import build

        return build(settings, registry)
    if settings.unit == "memory":
        from .memory import build

        return build(settings, registry)
    raise ValueError(f"no unit named {settings.unit!r}")
