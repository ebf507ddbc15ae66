"""The dashboard: a static single-page app that talks only to the public REST and Socket.IO APIs.

Plain ES modules under ``static/js`` (no build step). The Socket.IO browser client is
vendored from npm into ``static/vendor`` and committed, so serving needs no Node.js.
To refresh it after changing the version pinned in ``package.json``::

    npm ci && npm run vendor
"""

from wipsvc.web.routes import include_dashboard, router

__all__ = ["include_dashboard", "router"]
