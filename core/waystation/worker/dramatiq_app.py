"""Dramatiq's own CLI entry: ``dramatiq waystation.worker.dramatiq_app`` runs waystation workers
with Dramatiq's process manager (``--processes``, ``--threads``, reloads, its Prometheus
exposition server). Settings come from the environment (:meth:`WorkerConfig.from_env`:
``WAYSTATION_REDIS_URL`` and optionally ``WAYSTATION_BROKER_URL``, ``WAYSTATION_WORKER_*``);
stations from the installed plugins; the run history goes to ``WAYSTATION_HISTORY`` (default the
local ``.waystation/checkpoints.db``). Importing this module builds the broker and declares the
actor, as Dramatiq expects."""

from __future__ import annotations

import dramatiq

from waystation.history import default_history_url
from waystation.history.collector import HistoryListener
from waystation.worker.app import worker_broker
from waystation.worker.config import WorkerConfig
from waystation.worker.runtime import Runtime

config = WorkerConfig.from_env()
history = HistoryListener(default_history_url(None) or "sqlite://", config.worker_id)
broker, middleware = worker_broker(config, Runtime(config, listeners=[history]))
dramatiq.set_broker(broker)
