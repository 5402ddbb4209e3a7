"""`intake run`: sources and workers as threads around one pipeline.

Each source and each worker runs in its own thread until the stop event is set
(SIGTERM/SIGINT); the item in hand is finished, then the thread returns. The IMAP
backlog is taken by the pipeline in a worker process (intake/pipeline/pool.py), so
that reading mail and sending acknowledgements use another core than writing
tickets; PDFs are rendered in processes of their own (archive/worker.py). With
--once everything waiting is taken in this one process, every due effect carried
out, and it exits.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from intake.context import Context, watch_rules
from intake.ops.alerts import AlertsWorker
from intake.outgoing.mailer import OutboxWorker
from intake.pipeline.pool import PipelinePool
from intake.pipeline.runner import Pipeline
from intake.sources.lease import lease_for
from intake.staffmail.timers import TimersWorker

log = logging.getLogger("intake.daemon")


@dataclass
class Worker:
    name: str
    run_once: Callable[[], object]
    run_forever: Callable[[threading.Event], None]


@dataclass
class Daemon:
    ctx: Context
    listen: str | None = None
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.pipeline = Pipeline(self.ctx)
        # what the sources feed: batches go to the pipeline's worker process once started
        self.sink = PipelinePool(self.ctx, self.pipeline, self.ctx.config.pipeline.processes)
        self.sources = self._sources()
        self.outbox = OutboxWorker(self.ctx)
        self.timers = TimersWorker(self.ctx)  # SLA reminders/escalations, follow-ups, survey time-outs
        self.alerts = AlertsWorker(self.ctx)  # a mail when a source starts failing and when it recovers
        self.archiver = make_archiver(self.ctx) if self.ctx.config.archive.enabled else None

    def _sources(self) -> list[Worker]:
        cfg, sink, stop = self.ctx.config, self.sink, self.stop
        workers: list[Worker] = []
        for account in cfg.imap:
            from intake.sources.imap import ImapSource

            settings = imap_account(account, cfg.paths.var)  # one per account: its mailboxes share one token cache
            for mailbox in account.mailboxes:
                name = f"imap:{account.name}/{mailbox}"
                source = ImapSource(settings, mailbox, sink, stop, lease=self._lease(name))
                workers.append(Worker(name, source.run_once, _stop_given_already(source.run_forever)))
        for graph in cfg.graph:
            from intake.sources.graph import GraphSource, graph_account

            reached = graph_account(graph, cfg.paths.var, stop)  # one per account: its folders share one token
            for folder in graph.folders:
                name = f"graph:{graph.name}/{folder}"
                folder_source = GraphSource(reached, folder, sink, stop, lease=self._lease(name))
                workers.append(Worker(name, folder_source.run_once, _stop_given_already(folder_source.run_forever)))
        if cfg.maildir.enabled:
            from intake.sources.maildir import MaildirSource

            drop = MaildirSource(cfg.maildir.path, sink, name="drop")
            drop.lease = self._lease(f"maildir:{cfg.maildir.path.resolve()}")
            workers.append(Worker("maildir:drop", drop.run_once, drop.run_forever))
        if cfg.spool.enabled:
            from intake.sources.spool import SpoolSource

            spool = SpoolSource(cfg.spool.path, sink)
            spool.lease = self._lease(f"spool:{cfg.spool.path.resolve()}")
            workers.append(Worker("spool", spool.run_once, spool.run_forever))
        return workers

    def _lease(self, source: str):
        """Who reads `source` when several daemons share a PostgreSQL (intake/sources/lease.py)."""
        return lease_for(self.ctx.sessions.kw["bind"], source, self.ctx.config.database.lease_retry_seconds)

    def run_once(self) -> dict[str, object]:
        """Take what waits in every source, then carry out every due effect."""
        self.outbox.take_over_at_start()  # a dead daemon's claimed mail goes out in this run
        taken = {w.name: w.run_once() for w in self.sources}
        timers = self.timers.run_once()  # before the mailer, so what the timers queue goes out now
        self.alerts.run_once()
        sent, failed = self.outbox.run_once()
        summary = {"taken": taken, "sent": sent, "send_failures": failed, "timers": timers}
        if self.archiver is not None:
            stats = self.archiver.run_once()
            self.archiver.close()
            summary["archived"], summary["archive_failures"] = stats.written, stats.failed
        return summary

    def run_forever(self) -> None:
        self._install_signals()
        threads = [threading.Thread(target=w.run_forever, args=(self.stop,), name=w.name, daemon=True) for w in self.sources]
        threads.append(threading.Thread(target=self.outbox.run_forever, args=(self.stop,), name="outbox", daemon=True))
        threads.append(threading.Thread(target=self.timers.run_forever, args=(self.stop,), name="timers", daemon=True))
        threads.append(threading.Thread(target=self.alerts.run_forever, args=(self.stop,), name="alerts", daemon=True))
        if self.archiver is not None:
            threads.append(threading.Thread(target=self.archiver.run_forever, args=(self.stop,), name="archiver", daemon=True))
        if self.listen:
            threads.append(self._web_thread(self.listen))
        if self.ctx.config.metrics.listen:  # /metrics and /healthz (intake/ops)
            from intake.ops.server import ops_thread

            threads.append(ops_thread(self.ctx, self.ctx.config.metrics.listen, self.stop))
        rules = watch_rules(self.ctx)
        self.outbox.take_over_at_start()  # a dead daemon's claimed mail goes out first, now, not after its lease
        self.sink.start()
        for t in threads:
            t.start()
        log.info("intake running: %s", ", ".join(t.name for t in threads))
        self.stop.wait()
        log.info("stopping: finishing work in hand")
        self.ctx.wake_outbox.set()
        for t in threads:
            t.join(timeout=30)
            if t.is_alive():
                log.warning("%s did not stop within 30 s", t.name)
        self.sink.close()
        if rules is not None:
            rules.stop()
        log.info("stopped")

    def _install_signals(self) -> None:
        def handle(signum, _frame):
            log.info("received %s", signal.Signals(signum).name)
            self.stop.set()

        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, handle)
            signal.signal(signal.SIGINT, handle)

    def _web_thread(self, listen: str) -> threading.Thread:
        from intake.config import parse_listen
        from intake.web import create_app, serve
        from intake.web.settings import settings_from_config

        host, port = parse_listen(listen)
        from intake.staffmail.survey_page import survey_routes
        from intake.web.console import console_routes  # /console, when [console] enabled

        app = create_app(
            settings_from_config(self.ctx.config, host, port),
            self.pipeline,
            self.ctx.config.spool.path,
            extra_routes=survey_routes(self.ctx) + console_routes(self.ctx),
        )
        return threading.Thread(target=serve, args=(app, host, port, self.stop), name=f"web:{host}:{port}", daemon=True)


def _stop_given_already(run_forever: Callable[[], None]) -> Callable[[threading.Event], None]:
    """A source's run_forever that was given the daemon's stop event when it was built."""
    return lambda _stop: run_forever()


def imap_account(cfg, var):
    """The IMAP source's account settings from a validated [[imap]] table; with auth =
    "oauth2" its token source, which keeps its files in `var` (paths.var)."""
    from intake.oauth import token_source
    from intake.sources.imap import ImapAccount

    return ImapAccount(
        name=cfg.name,
        host=cfg.host,
        port=cfg.port,
        security=cfg.security,
        username=cfg.username,
        password=cfg.secret(),
        tokens=token_source(cfg, f"imap:{cfg.name}", var),
        mailboxes=list(cfg.mailboxes),
        on_done=cfg.on_done,
        processed_folder=cfg.processed_folder,
        idle=cfg.idle,
        idle_timeout=cfg.idle_timeout,
        poll_interval=cfg.poll_interval,
        batch_size=cfg.batch_size,
        verify_tls=cfg.verify_tls,
        ca_file=cfg.ca_file or None,
    )


def make_archiver(ctx: Context):
    """The archive worker: renders case PDFs in its own processes, off the acknowledgement path."""
    from archive.from_tickets import TicketLoader
    from archive.retention import RetentionPolicy
    from archive.storage import open_storage
    from archive.worker import ArchiveWorker

    cfg = ctx.config.archive
    return ArchiveWorker(
        ctx.sessions,
        open_storage(cfg),
        TicketLoader(ctx.config.tickets.timezone, cfg.language, ctx.staff),
        processes=cfg.workers,
        lang=cfg.language,
        policy=RetentionPolicy(cfg.retention_years, cfg.retention_override),
        clock=ctx.now,
    )
