"""The web application factory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jinja2
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.middleware.sessions import SessionMiddleware

from . import views_admin, views_annotator, views_auth
from .accounts import LoginRateLimiter
from .database import make_engine, make_session_factory, migrate, session_secret
from .deps import NotLoggedIn, redirect
from .labels import InvalidLabel
from .security import SecurityHeadersMiddleware, verify_csrf

PACKAGE_DIR = Path(__file__).parent
SESSION_MAX_AGE_S = 12 * 60 * 60


@dataclass(frozen=True)
class AppConfig:
    db_url: str
    media_root: Path
    secret_key: str | None = None
    secure_cookies: bool = False
    login_max_failures: int = 5
    login_window_s: float = 300.0


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
    app.state.login_limiter = LoginRateLimiter(config.login_max_failures, config.login_window_s)
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(PACKAGE_DIR / "templates"), autoescape=True
    )
    app.state.templates = Jinja2Templates(env=environment)

    app.add_middleware(
        SessionMiddleware,
        secret_key=secret,
        session_cookie="imreward_session",
        max_age=SESSION_MAX_AGE_S,
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

    return app
