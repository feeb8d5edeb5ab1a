"""The app every unit shares: /health, /ready, /metrics, errors, logs, limits; the unit adds /v1."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import __version__
from .admission import AdmissionMiddleware, build_gates
from .auth import AuthMiddleware, JwtVerifier
from .errors import error_response
from .metrics import CONTENT_TYPE, Registry
from .middleware import BodyLimitMiddleware, ObserveMiddleware
from .openapi import Health, Ready, install
from .settings import Settings
from .unit import Unit, run_checks

log = logging.getLogger("mlstack_services")

UnitBuilder = Callable[[Settings, Registry], Unit]


def _validation_message(exc: RequestValidationError) -> tuple[int, str]:
    errors = exc.errors()
    for err in errors:
        if err.get("type") == "json_invalid":
            reason = (err.get("ctx") or {}).get("error", "invalid JSON")
            return 400, f"malformed JSON body: {reason}"
    parts = []
    for err in errors[:10]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return 422, "invalid request: " + "; ".join(parts)


def create_app(settings: Settings, builder: UnitBuilder | None = None) -> FastAPI:
    registry = Registry(settings.unit, __version__)
    if builder is None:
        from .units import build_unit

        builder = build_unit
    unit = builder(settings, registry)
    verifier = JwtVerifier(settings.jwt_public_key_file, settings.jwt_issuer, settings.jwt_audience)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        for hook in unit.on_startup:
            try:
                await hook()
            except Exception as exc:  # a unit starts even when a dependency is down
                log.warning("startup step failed; /ready will say why", extra={"error": f"{type(exc).__name__}: {exc}"})
        log.info("unit started", extra={"event": "start"})
        yield
        for hook in unit.on_shutdown:
            try:
                await hook()
            except Exception as exc:
                log.warning("shutdown step failed", extra={"error": f"{type(exc).__name__}: {exc}"})
        log.info("unit stopped", extra={"event": "stop"})

    app = FastAPI(title=f"mlstack {settings.unit}", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    app.state.settings, app.state.registry, app.state.verifier, app.state.unit = settings, registry, verifier, unit
    app.state.gates = build_gates(set(unit.admission.values()), settings.admission_concurrency,
                                  settings.admission_queue, settings.admission_wait_s, registry)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(*_validation_message(exc))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error", exc_info=exc, extra={"path": request.url.path})
        return error_response(500, "internal error; the service logged it and stays up")

    @app.get("/health", tags=["common"], response_model=Health)
    async def health() -> dict[str, str]:
        return {"status": "ok", "unit": settings.unit}

    @app.get("/ready", tags=["common"], response_model=None, responses={
        200: {"model": Ready, "description": "Every required dependency answers."},
        503: {"model": Ready, "description": "A required dependency does not answer: its check says why."}})
    async def ready() -> JSONResponse:
        async def jwt_check() -> tuple[bool, str]:
            return verifier.check()

        checks = await run_checks({"jwt": jwt_check, **unit.checks, **unit.optional_checks})
        ok = all(c["ok"] for name, c in checks.items() if name not in unit.optional_checks)
        for name in unit.optional_checks:
            checks[name]["optional"] = True
        degraded = sorted(name for name in unit.optional_checks if not checks[name]["ok"])
        body = {"ready": ok, "unit": settings.unit, "checks": checks, "degraded": degraded}
        if unit.backends:
            body["backends"] = unit.backends
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["common"], response_class=PlainTextResponse, responses={200: {
        "description": "Prometheus text exposition format 0.0.4.",
        "content": {"text/plain": {"schema": {"type": "string"}}}}})
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(registry.render(), media_type=CONTENT_TYPE)

    app.include_router(unit.router)
    # Outermost last: observe (log + metrics) > auth on /v1 > body limits > admission > the routes,
    # so a request without a token or with an oversized body never takes a place in a queue.
    app.add_middleware(AdmissionMiddleware, gates=app.state.gates, paths=unit.admission)
    app.add_middleware(BodyLimitMiddleware, default_limit=settings.max_body_bytes, limits=unit.body_limits)
    app.add_middleware(AuthMiddleware, verifier=verifier)
    app.add_middleware(ObserveMiddleware, registry=registry, routes=[*app.router.routes, *unit.router.routes],
                       quiet_paths=("/health", "/ready", "/metrics"))
    # The OpenAPI document: every answer of the unit, the shared layers' included (openapi.py).
    install(app, [*app.router.routes, *unit.router.routes])
    return app
