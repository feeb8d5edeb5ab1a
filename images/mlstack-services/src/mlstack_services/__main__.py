"""``python -m mlstack_services``: run the unit named by MLSTACK_UNIT with uvicorn on 0.0.0.0:$PORT."""

from __future__ import annotations

import json
import logging.config
import sys

import uvicorn

from .app import create_app
from .logs import log_config
from .settings import ConfigError, Settings


def main() -> int:
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(json.dumps({"level": "error", "msg": f"configuration error: {exc}"}), file=sys.stderr)
        return 2
    config = log_config(settings.unit, settings.log_level)
    logging.config.dictConfig(config)
    app = create_app(settings)
    # uvicorn stops on SIGTERM/SIGINT: it stops accepting, lets requests in flight finish
    # (at most timeout_graceful_shutdown seconds), then runs the app's shutdown steps.
    # 0.0.0.0: the container's network namespace is the boundary.
    uvicorn.run(app, host="0.0.0.0", port=settings.port, log_config=config, access_log=False,
                timeout_graceful_shutdown=15, server_header=False, proxy_headers=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
