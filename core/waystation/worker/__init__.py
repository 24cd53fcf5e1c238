"""Workers on several machines, on Dramatiq (``pip install 'waystation[workers]'``).

``waystation enqueue ROUTE INPUT`` makes a run (its own run id) and queues one message per lead;
any number of ``waystation worker`` processes, on any machines, run them; ``waystation queue RUN``
tells how far the run is; ``waystation export RUN -o out.csv`` writes its results like
``waystation run``. See docs/workers.md for deployment and delivery guarantees.

- :mod:`waystation.worker.config`: :class:`WorkerConfig`.
- :mod:`waystation.worker.state`: the run's bookkeeping in Redis (results once per lead).
- :mod:`waystation.worker.fleet`: the fleet budget (Lua, leases).
- :mod:`waystation.worker.broker`: the Dramatiq broker and waystation's middleware (heartbeat,
  crash guard, durable retries).
- :mod:`waystation.worker.runtime`: one process's engines; running one lead.
- :mod:`waystation.worker.app`: the actor, enqueueing, running a worker, dead letters.
- :mod:`waystation.worker.runs`: enqueue a file, status, export.
- :mod:`waystation.worker.dramatiq_app`: for ``dramatiq waystation.worker.dramatiq_app``.

Nothing here is imported by ``import waystation``; Dramatiq is needed only when a worker command runs.
"""

from __future__ import annotations

from waystation.worker.config import WorkerConfig

__all__ = ["WorkerConfig"]
