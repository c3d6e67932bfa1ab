"""Foreground server for the CLI: :func:`run_foreground` (``helixpy zk start``)."""

from __future__ import annotations

import logging
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType

from helixpy.testing.zookeeper.classpath import _find_java, find_zookeeper_classpath
from helixpy.testing.zookeeper.jvm import (
    _DEFAULT_STOP_TIMEOUT,
    _JVM_FLAGS,
    _KILL_REAP_TIMEOUT,
    _LOG4J_PROPERTIES,
    _LOGBACK_XML,
    _POLL_INTERVAL,
    _STANDALONE_MAIN,
)
from helixpy.testing.zookeeper.net import _LOOPBACK

# One logger for the whole package, named as when it was a single module, so that
# logging configuration and log records are unchanged by the split.
log = logging.getLogger("helixpy.testing.zookeeper")


def run_foreground(
    port: int,
    data_dir: str,
    tick_time: float = 2.0,
    *,
    host: str = _LOOPBACK,
    classpath: str | None = None,
    stop_timeout: float = _DEFAULT_STOP_TIMEOUT,
) -> int:
    """Run one standalone server attached to the terminal until it exits; return its code.

    Backs ``helixpy zk start --port P --data-dir D``. Data lives in ``data_dir`` (created if
    missing) and survives; the generated config lives in a temporary directory. The server
    logs to the inherited stdout. SIGINT/SIGTERM received by this process are forwarded to
    the server; if it has not exited ``stop_timeout`` seconds later, or on a second signal,
    it is SIGKILLed. A server killed by signal ``N`` is reported as ``128 + N``, the shell
    convention. Signals are only forwarded when called from the main thread (Python only
    delivers signals there).
    """
    data = Path(data_dir).resolve()
    data.mkdir(parents=True, exist_ok=True)
    cp = classpath if classpath is not None else find_zookeeper_classpath()
    with tempfile.TemporaryDirectory(prefix="helixpy-zk-conf-") as conf_name:
        conf = Path(conf_name)
        tick_ms = max(1, int(tick_time * 1000))
        config = [
            f"tickTime={tick_ms}",
            f"dataDir={data}",
            f"clientPort={port}",
            f"clientPortAddress={host}",
            f"minSessionTimeout={2 * tick_ms}",
            f"maxSessionTimeout={max(60000, 20 * tick_ms)}",
            "4lw.commands.whitelist=*",
            "admin.enableServer=false",
            "maxClientCnxns=0",
        ]
        (conf / "zoo.cfg").write_text("\n".join(config) + "\n", encoding="utf-8")
        (conf / "log4j.properties").write_text(_LOG4J_PROPERTIES, encoding="utf-8")
        (conf / "logback.xml").write_text(_LOGBACK_XML, encoding="utf-8")
        command = [
            _find_java(),
            *_JVM_FLAGS,
            f"-Dlog4j.configuration={(conf / 'log4j.properties').as_uri()}",
            f"-Dlogback.configurationFile={conf / 'logback.xml'}",
            "-cp",
            cp,
            _STANDALONE_MAIN,
            str(conf / "zoo.cfg"),
        ]
        # Own session: a terminal Ctrl-C reaches only us, and we forward it exactly once.
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True)
        return _supervise_foreground(proc, stop_timeout)


def _supervise_foreground(proc: subprocess.Popen[bytes], stop_timeout: float) -> int:
    kill_deadline: float | None = None

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal kill_deadline
        if kill_deadline is None:
            kill_deadline = time.monotonic() + stop_timeout
            proc.send_signal(signum)
        else:
            # A second signal means "stop now".
            proc.kill()

    forwarded = (signal.SIGINT, signal.SIGTERM)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.getsignal(sig) for sig in forwarded} if in_main_thread else {}
    try:
        for sig in previous:
            signal.signal(sig, forward)
        while True:
            try:
                code = proc.wait(timeout=_POLL_INTERVAL * 4)
                break
            except subprocess.TimeoutExpired:
                # Still running: the normal case for a foreground server. Wake up only to
                # enforce the SIGKILL deadline once a stop was requested.
                if kill_deadline is not None and time.monotonic() > kill_deadline:
                    log.warning("ZooKeeper did not stop within %ss; sending SIGKILL", stop_timeout)
                    proc.kill()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if proc.poll() is None:
            # We are leaving because of an exception in this process: do not orphan the JVM.
            proc.kill()
            proc.wait(timeout=_KILL_REAP_TIMEOUT)
    return code if code >= 0 else 128 - code
