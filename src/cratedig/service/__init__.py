"""The web service: REST API (OpenAPI at ``/docs``) and the web page, over
:mod:`cratedig.workflows`. ``cratedig serve`` runs :func:`create_app` under uvicorn."""

from cratedig.service.app import create_app
from cratedig.service.settings import ServiceSettings

__all__ = ["ServiceSettings", "create_app"]
