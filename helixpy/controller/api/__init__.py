"""The controller's HTTP API (``--http-port``): JSON routes for workflows, jobs, tasks,
queues, instances and locks, ``/openapi.json`` generated from the route table, and the
dashboard page on the same server.

- :mod:`.routing`: routes, matching, errors and their statuses, body parsing (pure);
- :mod:`.routes`: the route table; :mod:`.openapi`: the document generated from it;
- :mod:`.reads` / :mod:`.writes`: the handlers; :mod:`.mutations`: the way to the leader;
- :mod:`.access`: the bearer token, the binding rule, TLS; :mod:`.server`: the server.
"""

from helixpy.controller.api.access import check_binding, server_context
from helixpy.controller.api.mutations import Mutator
from helixpy.controller.api.server import ControllerHttp

__all__ = ["ControllerHttp", "Mutator", "check_binding", "server_context"]
