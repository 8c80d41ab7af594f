"""``aliecs-integration serve`` with one more in-process plugin, ``slow``, whose call function
``slow.Sleep(SECONDS)`` sleeps: a transition that takes time, for the shutdown and concurrency
tests. Run as ``python -m tests.integration.serve_with_slow_plugin serve ARGS...``."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any

from aliecs_integration.cli import serve as serve_cli
from aliecs_integration.cli.main import main
from aliecs_integration.hookspecs import hookimpl
from aliecs_integration.records import CallContext, CallFunction
from aliecs_integration.service.server import ControlServer


class SlowPlugin:
    pretty_name = "sleeps on request"

    @staticmethod
    def sleep(context: CallContext) -> str:
        time.sleep(float(context.args or "1"))
        return ""

    @hookimpl
    def register_call_functions(self) -> Mapping[str, CallFunction]:
        return {"Sleep": self.sleep}


class ServerWithSlowPlugin(ControlServer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, extra_plugins={"slow": SlowPlugin()}, **kwargs)


if __name__ == "__main__":
    serve_cli.ControlServer = ServerWithSlowPlugin  # type: ignore[misc]
    main(sys.argv[1:])
