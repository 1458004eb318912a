"""The studio's web application: :func:`create_app` puts the pages, their JSON and the OpenAI API together.

Errors are always JSON, ``{"error": {"message", "type", "code"}}``, with a 4xx status for what the
request got wrong (bad JSON, a field out of range, an unknown model: 404) and a 5xx one for a run that
cannot be read; the server stays up either way. The pages are plain files from
``attnlab/serve/static`` under a strict Content-Security-Policy (no inline script, nothing from
elsewhere), so text a user typed can never run as code.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from attnlab.errors import AttnlabError
from attnlab.serve import openai_api, studio_api
from attnlab.serve.registry import Registry, RunNotFound, RunUnreadable
from attnlab.serve.validate import ApiError
from attnlab.version import __version__

PAGES = {"/chat": "chat.html", "/inside": "inside.html", "/runs": "runs.html"}
PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
            "frame-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'")
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def static_dir() -> Path:
    return Path(str(resources.files("attnlab.serve").joinpath("static")))


def error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=SECURITY_HEADERS)


def as_api_error(err: Exception) -> ApiError:
    """Any error as the API reports it."""
    if isinstance(err, ApiError):
        return err
    if isinstance(err, RunNotFound):
        return ApiError(str(err), 404, code="model_not_found", param="model")
    if isinstance(err, RunUnreadable):
        return ApiError(str(err), 500, "server_error", code="run_unreadable")
    if isinstance(err, AttnlabError):
        return ApiError(str(err), 400, code="invalid_request")
    return ApiError(f"the server failed ({type(err).__name__}: {err})", 500, "server_error", code="internal_error")


def create_app(sources: list[str | Path], device: str = "cpu") -> FastAPI:
    """The app serving the runs under ``sources`` (run folders and/or folders of runs)."""
    app = FastAPI(title="attnlab studio", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.registry = Registry(sources, device=device)
    app.include_router(openai_api.router)
    app.include_router(studio_api.router)
    app.mount("/static", StaticFiles(directory=static_dir()), name="static")

    @app.exception_handler(AttnlabError)
    async def on_attnlab_error(request: Request, err: AttnlabError) -> JSONResponse:
        return error_response(as_api_error(err))

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, err: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in err.errors())
        return error_response(ApiError(f"invalid request: {problems}", 422, code="invalid_request"))

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        kind = "not_found_error" if err.status_code == 404 else "invalid_request_error"
        message = f"no such endpoint: {request.method} {request.url.path}" if err.status_code == 404 else err.detail
        return error_response(ApiError(str(message), err.status_code, kind, code=str(err.status_code)))

    @app.exception_handler(Exception)
    async def on_any_error(request: Request, err: Exception) -> JSONResponse:
        return error_response(as_api_error(err))

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        for key, value in SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
        if request.url.path in PAGES or request.url.path.startswith("/static/"):
            response.headers["Content-Security-Policy"] = PAGE_CSP
        return response

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__}

    @app.get("/")
    async def home() -> RedirectResponse:
        return RedirectResponse("/chat")

    def page(file: str) -> Any:
        async def serve_page() -> FileResponse:
            return FileResponse(static_dir() / file, media_type="text/html")
        return serve_page

    for route, file in PAGES.items():
        app.add_api_route(route, page(file), methods=["GET"], include_in_schema=False)
    return app
