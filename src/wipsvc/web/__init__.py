"""The dashboard: a static single-page app that talks only to the public REST and Socket.IO APIs.

Plain ES modules under ``static/js`` (no build step). The Socket.IO browser client, and
Swagger UI and ReDoc for the API docs (``docs.py``), are vendored from npm into
``static/vendor`` and committed, so serving needs no Node.js. To refresh them after
changing the versions pinned in ``package.json``::

    npm ci && npm run vendor
"""

from wipsvc.web.routes import include_dashboard, router

__all__ = ["include_dashboard", "router"]
