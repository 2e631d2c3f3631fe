"""Kopf registration and start-up: everything the operator wires together before it runs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Any

import kopf

from finops_operator import metrics, webhooks
from finops_operator.handlers import admission, edgefleet, finopspolicy, modelreleasegate, sovereignregion
from finops_operator.handlers.prediction import ForecasterCache
from finops_operator.handlers.status import RecentWrites
from finops_operator.kopf_startup import patch_kopf_startup
from finops_operator.kube import KubeClient
from finops_operator.leadership import Leadership, hold
from finops_operator.settings import Settings

ANNOTATION_PREFIX = "finops.dev"
FINALIZER = "finops.dev/finalizer"
EVENT_SOURCE = "finops-operator"


def build_registry(
    operator_settings: Settings, scratch: contextlib.ExitStack, *, standby: bool = False
) -> kopf.OperatorRegistry:
    """A registry holding every handler of the operator, configured from ``operator_settings``;
    the webhook's temporary certificate files (if any) live as long as ``scratch``.

    ``standby``: only the indexes and the admission handlers that read them, for a replica that
    does not hold the Lease: it answers admission from current indexes and never writes."""
    registry = kopf.OperatorRegistry()
    if operator_settings.webhook_enabled:
        server, client_config = webhooks.build_server(operator_settings, scratch)

    @kopf.on.startup(id="configure_kopf", registry=registry)
    def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        configure_kopf(settings)
        memo.kube = client_of(operator_settings)
        if operator_settings.webhook_enabled:
            # Kopf serves the webhooks; the configurations are ours (handlers.admission): Kopf's
            # managed ones would call the operator for every namespace and wait 30 s on it.
            settings.admission.server = server

    @kopf.on.login(id="login", registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        """In-cluster service account first, then KUBECONFIG (a custom registry has no default)."""
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    if standby:
        finopspolicy.register_indexes(registry)
        sovereignregion.register_indexes(registry)
        modelreleasegate.register_indexes(registry)
    else:
        finopspolicy.register(registry, operator_settings)
        sovereignregion.register(registry, operator_settings)
        edgefleet.register(registry, operator_settings)
        modelreleasegate.register(registry, operator_settings)
    if operator_settings.webhook_enabled:
        finopspolicy.register_admission(registry)
        sovereignregion.register_admission(registry, operator_settings)
        edgefleet.register_admission(registry, operator_settings)
        modelreleasegate.register_admission(registry)
        if not standby:  # the leader owns the configurations, as every other write
            admission.register(registry, operator_settings, webhooks.endpoints(registry), client_config)
    return registry


def client_of(settings: Settings) -> KubeClient:
    """The thin client, held to the configured client QPS and burst."""
    return KubeClient.from_environment(qps=settings.client_qps, burst=settings.client_burst)


def configure_kopf(kopf_settings: kopf.OperatorSettings) -> None:
    """Keep Kopf's bookkeeping in our own annotations; never in status (the schema prunes unknown
    status fields) and never in the spec (Argo CD owns it). Events carry our name, not Kopf's."""
    kopf_settings.persistence.finalizer = FINALIZER
    kopf_settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=ANNOTATION_PREFIX)
    kopf_settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATION_PREFIX, key="last-handled-configuration"
    )
    kopf_settings.posting.level = logging.WARNING
    # Events say who wrote them (`kubectl describe`: From finops-operator) and which instance: the
    # pod name in a cluster (its hostname).
    kopf_settings.posting.reporting_component = EVENT_SOURCE
    kopf_settings.posting.reporting_instance = socket.gethostname()
    kopf_settings.watching.server_timeout = 300
    kopf_settings.watching.client_timeout = 330
    # List what exists in pages (client-go's page size) rather than in one response per resource: at
    # start-up every watched kind is listed at once, and the whole of each list in memory at the same
    # time was the operator's peak RSS on a large cluster, which the process keeps.
    kopf_settings.watching.chunk_size = 500
    # A worker waiting for its object's next event keeps the last one in memory. Kopf waits 5 s; a
    # burst of events on thousands of objects (the listing, or the pod finalizers of the first
    # sweep) then holds thousands of bodies at once, and the process keeps that peak. A later event
    # starts a new worker, which is cheap; the wait for our own patch to come back is not shortened.
    kopf_settings.queueing.idle_timeout = 0.1
    kopf_settings.networking.request_timeout = 60
    kopf_settings.execution.max_workers = 8


async def run_operator(
    settings: Settings,
    stop_flag: asyncio.Event | None = None,
    ready_flag: asyncio.Event | None = None,
) -> None:
    """Run until ``stop_flag`` is set or the process receives SIGINT/SIGTERM. With leader election,
    serve as a standby until the Lease is ours, then as the leader until it is lost (then exit 1, so
    Kubernetes restarts the pod as a standby)."""
    kopf.configure(
        verbose=settings.log_level == "debug",
        quiet=settings.log_level == "warning",
        log_format=kopf.LogFormat[settings.log_format.upper()],
    )
    if settings.metrics_port:
        metrics.serve(settings.metrics_port)
    with contextlib.ExitStack() as scratch:  # temporary files (webhook certificates) go on any exit
        if not settings.leader_election:
            await _run_kopf(settings, build_registry(settings, scratch), stop_flag, ready_flag)
            return
        await _run_elected(settings, scratch, stop_flag, ready_flag)


async def _run_elected(
    settings: Settings,
    scratch: contextlib.ExitStack,
    stop_flag: asyncio.Event | None,
    ready_flag: asyncio.Event | None,
) -> None:
    leadership = Leadership(client_of(settings), settings)
    acquired, lost = asyncio.Event(), asyncio.Event()
    holder = asyncio.create_task(hold(leadership, acquired, lost))
    try:
        standby_stop = asyncio.Event()
        standby = asyncio.create_task(
            _run_kopf(settings, build_registry(settings, scratch, standby=True), standby_stop, ready_flag)
        )
        waits = [standby, asyncio.create_task(acquired.wait())]
        if stop_flag is not None:
            waits.append(asyncio.create_task(stop_flag.wait()))
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        standby_stop.set()
        await standby
        if not acquired.is_set() or (stop_flag is not None and stop_flag.is_set()):
            return  # stopped (SIGTERM) while standing by
        logging.getLogger(__name__).info("leading: starting the reconcilers")
        leader_stop = asyncio.Event()
        relay = asyncio.create_task(_first_of(leader_stop, lost, stop_flag))
        await _run_kopf(settings, build_registry(settings, scratch), leader_stop, None)
        relay.cancel()
        if lost.is_set():
            raise SystemExit(1)
    finally:
        holder.cancel()
        if acquired.is_set() and not lost.is_set():
            with contextlib.suppress(Exception):
                await asyncio.to_thread(leadership.release)


async def _first_of(target: asyncio.Event, *sources: asyncio.Event | None) -> None:
    """Set ``target`` as soon as any of ``sources`` is set."""
    waits = [asyncio.create_task(s.wait()) for s in sources if s is not None]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        target.set()
    finally:
        for wait in waits:
            wait.cancel()


async def _run_kopf(
    settings: Settings,
    registry: kopf.OperatorRegistry,
    stop_flag: asyncio.Event | None,
    ready_flag: asyncio.Event | None,
) -> None:
    patch_kopf_startup()  # before Kopf binds its processor; kopf_startup.py says why
    await kopf.operator(
        registry=registry,
        standalone=settings.standalone,
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        liveness_endpoint=f"http://0.0.0.0:{settings.health_port}/healthz" if settings.health_port else None,
        memo=kopf.Memo(
            settings=settings,
            locks={},
            recent_writes=RecentWrites(ttl=max(30.0, 3 * settings.sample_interval_seconds)),
            forecasters=ForecasterCache(),
        ),
        stop_flag=stop_flag,
        ready_flag=ready_flag,
    )
