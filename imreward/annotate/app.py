"""The web application factory."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import jinja2
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.middleware.sessions import SessionMiddleware

from . import views_admin, views_annotator, views_auth
from .database import make_engine, make_session_factory, migrate, session_secret
from .deps import NotLoggedIn, redirect
from .guard import BodyLimits, RequestGuardMiddleware
from .importer import ImportLimits
from .labels import InvalidLabel
from .login_sessions import SessionPolicy
from .login_throttle import LoginPolicy, LoginThrottle
from .password_checks import PasswordChecks
from .security import SecurityHeadersMiddleware, verify_csrf

PACKAGE_DIR = Path(__file__).parent


@dataclass(frozen=True)
class AppConfig:
    db_url: str
    media_root: Path
    secret_key: str | None = None
    secure_cookies: bool = False
    login: LoginPolicy = field(default_factory=LoginPolicy)
    sessions: SessionPolicy = field(default_factory=SessionPolicy)
    body_limits: BodyLimits = field(default_factory=BodyLimits)
    import_limits: ImportLimits = field(default_factory=ImportLimits)


def create_app(config: AppConfig) -> FastAPI:
    """Build the app; brings the database schema up to date first."""
    engine = make_engine(config.db_url)
    migrate(engine)
    sessions = make_session_factory(engine)
    if config.secret_key:
        secret = config.secret_key
    else:
        with sessions() as session:
            secret = session_secret(session)

    app = FastAPI(
        title="imreward annotate",
        dependencies=[Depends(verify_csrf)],
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.engine = engine
    app.state.sessions = sessions
    app.state.read_sessions = make_session_factory(engine, read_only=True)
    app.state.media_root = Path(config.media_root).resolve()
    app.state.login_throttle = LoginThrottle(sessions, config.login)
    app.state.password_checks = PasswordChecks(config.login.hashing_threads, config.login.hashing_queue)
    app.state.session_policy = config.sessions
    app.state.import_limits = config.import_limits
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(PACKAGE_DIR / "templates"), autoescape=True
    )
    app.state.templates = Jinja2Templates(env=environment)

    app.add_middleware(
        RequestGuardMiddleware,
        read_sessions=app.state.read_sessions,
        write_sessions=sessions,
        policy=config.sessions,
        limits=config.body_limits,
    )
    # The signed cookie holds the server-side session's token, the CSRF token and flash
    # messages; whether a login is still valid is decided by the `user_sessions` table.
    app.add_middleware(
        SessionMiddleware,
        secret_key=secret,
        session_cookie="imreward_session",
        max_age=int(config.sessions.lifetime_s),
        same_site="lax",
        https_only=config.secure_cookies,
    )
    app.add_middleware(SecurityHeadersMiddleware)
    app.mount("/static", StaticFiles(directory=PACKAGE_DIR / "static"), name="static")
    for module in (views_auth, views_annotator, views_admin):
        app.include_router(module.router)

    @app.exception_handler(NotLoggedIn)
    async def _not_logged_in(request: Request, _error: NotLoggedIn):
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": "log in first"}, status_code=401)
        return redirect("/login")

    @app.exception_handler(InvalidLabel)
    async def _invalid_label(_request: Request, error: InvalidLabel):
        return JSONResponse({"detail": str(error)}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_request: Request, error: RequestValidationError):
        # Name the fields only: echoing the input back could be huge, or NaN (not valid JSON).
        fields = [".".join(str(part) for part in e["loc"]) + ": " + e["msg"] for e in error.errors()]
        return JSONResponse({"detail": fields}, status_code=422)

    return app
