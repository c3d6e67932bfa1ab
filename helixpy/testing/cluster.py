"""``LocalCluster``: a real cluster on this machine for tests and demos.

ZooKeeper (a local server unless ``zk`` is given), controllers and participants each run as
separate OS processes (``python -m helixpy.cli ...``) that inherit the environment, so
``PYTHONPATH`` reaches task modules. Every wait is bounded and driven by watches.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from kazoo.client import KazooClient

from helixpy.driver import TaskDriver
from helixpy.errors import ClusterUnavailable
from helixpy.store.client import connect
from helixpy.store.codec import decode
from helixpy.store.paths import Paths
from helixpy.testing.zookeeper import local_zookeeper

START_TIMEOUT = 60.0


class _Proc:
    def __init__(
        self, name: str, args: list[str], log_dir: Path, prefix: Sequence[str] = ()
    ) -> None:
        self.name = name
        self.args = args
        self.prefix = list(prefix)  # e.g. ``ip netns exec NS``: where the process runs
        self.log_path = log_dir / f"{name}.log"
        self._log: IO[bytes] | None = None
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in wait()
        self.popen = subprocess.Popen(
            [*self.prefix, sys.executable, "-m", "helixpy.cli", *self.args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive:
            assert self.popen is not None
            os.kill(self.popen.pid, sig)

    def wait(self, timeout: float) -> None:
        if self.popen is not None:
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        if self._log is not None:
            self._log.close()
            self._log = None


class LocalCluster:
    """A ZooKeeper, ``controllers`` controllers and ``participants`` participants."""

    def __init__(
        self,
        tasks: str = "helixpy.testing.tasks:registry",
        participants: int = 3,
        controllers: int = 1,
        cluster: str | None = None,
        zk: str | None = None,
        session_timeout: float = 6.0,
        cluster_config: dict[str, Any] | None = None,
        zk_auth: str | None = None,
        extra_args: Sequence[str] = (),
        controller_args: Sequence[str] = (),
        driver_options: Mapping[str, Any] | None = None,
        keep_logs: bool = False,
    ) -> None:
        #: ``digest:user:password``: every process of the cluster authenticates with it
        self.zk_auth = zk_auth
        #: global CLI options for every process (``--token``, ``--tls-ca`` ...), options of
        #: the ``controller`` command (``--tls-cert`` ...), and TaskDriver keyword arguments
        self.extra_args = list(extra_args)
        self.controller_args = list(controller_args)
        self.driver_options = dict(driver_options or {})
        self.tasks = tasks
        self.cluster = cluster or f"c{uuid.uuid4().hex[:8]}"
        self.paths = Paths(self.cluster)
        self.session_timeout = session_timeout
        self._n_participants = participants
        self._n_controllers = controllers
        self._zk_arg = zk
        self._cluster_config = cluster_config
        self._stack = contextlib.ExitStack()
        self._procs: dict[str, _Proc] = {}
        self._controllers: list[str] = []
        self.instances: list[str] = []
        self.zk_address = ""
        self._zk: KazooClient | None = None
        self._driver: TaskDriver | None = None
        self.log_dir = Path(tempfile.mkdtemp(prefix="helixpy-cluster-"))
        #: keep ``log_dir`` after a clean exit too (it always stays after an error)
        self.keep_logs = keep_logs
        #: Stop with SIGTERM (participants drain, controllers resign) instead of SIGKILL.
        self.graceful_exit = False

    # --- context manager ------------------------------------------------------------------

    def __enter__(self) -> LocalCluster:
        try:
            self.zk_address = self._zk_arg or self._stack.enter_context(local_zookeeper())
            self._zk = connect(self.zk_address, auth=self.zk_auth)
            for _ in range(self._n_controllers):
                self.start_controller()
            self.wait_for_leader()
            for _ in range(self._n_participants):
                self.add_participant()
            self._driver = TaskDriver(
                self.zk_address, self.cluster, zk_auth=self.zk_auth, **self.driver_options
            )
            if self._cluster_config:
                self._driver.set_cluster_config(**self._cluster_config)
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._driver is not None:
            self._driver.close()
        # Participants first, so the controllers do not spend their last passes
        # rescheduling the work of participants that are shutting down anyway.
        sig = signal.SIGTERM if self.graceful_exit else signal.SIGKILL
        participants = [n for n in self._procs if n not in self._controllers]
        for group in (participants, self._controllers):
            for name in group:
                self._procs[name].signal(sig)
            for name in group:
                self._procs[name].wait(40 if self.graceful_exit else 10)
        if self._zk is not None:
            self._zk.stop()
            self._zk.close()
        self._stack.close()
        if et is not None:
            # Only once every process is gone: a failing write here (a closed pipe) must not
            # leave processes running. The logs stay on disk for whoever debugs it.
            with contextlib.suppress(OSError):
                sys.stderr.write(self.logs())
        elif not self.keep_logs:
            # A cluster that ended well leaves nothing behind in /tmp.
            shutil.rmtree(self.log_dir, ignore_errors=True)

    @property
    def driver(self) -> TaskDriver:
        assert self._driver is not None, "use LocalCluster as a context manager"
        return self._driver

    def logs(self) -> str:
        """Every process's log, for a failing test's output."""
        out = []
        for proc in self._procs.values():
            with contextlib.suppress(OSError):
                out.append(f"==== {proc.name} ====\n{proc.log_path.read_text(errors='replace')}")
        return "\n".join(out)

    def _base_args(self) -> list[str]:
        """The CLI's global options every process of this cluster gets."""
        args = ["--zk", self.zk_address, "--cluster", self.cluster]
        if self.zk_auth is not None:
            args += ["--zk-auth", self.zk_auth]
        return args + self.extra_args

    # --- controllers ----------------------------------------------------------------------

    def start_controller(self, controller_id: str | None = None) -> str:
        """Start a controller process (a stopped one again when ``controller_id`` is given)."""
        if controller_id is None:
            controller_id = next(
                (c for c in self._controllers if not self._procs[c].alive),
                f"controller-{len(self._controllers)}",
            )
        if controller_id not in self._procs:
            self._controllers.append(controller_id)
            self._procs[controller_id] = _Proc(
                controller_id,
                [
                    *self._base_args(),
                    "controller",
                    *self.controller_args,
                    "--id",
                    controller_id,
                    "--session-timeout",
                    str(self.session_timeout),
                ],
                self.log_dir,
            )
        self._procs[controller_id].start()
        return controller_id

    def leader(self) -> str:
        """The id of the current leader controller (waits for one, bounded)."""
        return self.wait_for_leader()

    def wait_for_leader(self, exclude: str | None = None, timeout: float = START_TIMEOUT) -> str:
        def read() -> str | None:
            assert self._zk is not None
            if self._controllers and not any(self._procs[c].alive for c in self._controllers):
                raise ClusterUnavailable(f"every controller exited:\n{self.logs()}")
            try:
                data, _ = self._zk.get(self.paths.leader, watch=wake)
            except Exception:
                self._zk.exists(self.paths.leader, watch=wake)
                return None
            leader = str(decode(data).get("id"))
            return None if leader == exclude else leader

        event = threading.Event()

        def wake(_e: Any) -> None:
            event.set()

        return str(self._wait(read, event, timeout, "a leader controller"))

    def kill_controller(self) -> str:
        """SIGKILL the leader controller; returns its id."""
        leader = self.leader()
        self._procs[leader].signal(signal.SIGKILL)
        self._procs[leader].wait(10)
        return leader

    def send_signal(self, process_id: str, sig: int) -> None:
        """Send ``sig`` to a controller or participant process by its id."""
        self._procs[process_id].signal(sig)

    def wait_registered(
        self, inst: str, other_than: int | None = None, timeout: float = START_TIMEOUT
    ) -> int:
        """Block (on watches) until ``inst`` is live under an incarnation other than
        ``other_than``; that incarnation."""
        self._wait_live(inst, lambda inc: inc is not None and inc != other_than, timeout)
        incarnation = self.incarnation(inst)
        assert incarnation is not None
        return incarnation

    def pid(self, process_id: str) -> int | None:
        """The OS pid of a controller or participant process (None if never started)."""
        popen = self._procs[process_id].popen
        return None if popen is None else popen.pid

    def exit_code(self, process_id: str, timeout: float) -> int | None:
        """Wait (bounded) for a process to exit; its exit code, None if still running."""
        popen = self._procs[process_id].popen
        if popen is None:
            return None
        try:
            return popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def freeze_controller(self, controller_id: str) -> None:
        """SIGSTOP a controller (it keeps its sockets but cannot act)."""
        self._procs[controller_id].signal(signal.SIGSTOP)

    def thaw_controller(self, controller_id: str) -> None:
        self._procs[controller_id].signal(signal.SIGCONT)

    # --- participants ---------------------------------------------------------------------

    def add_participant(
        self,
        tags: tuple[str, ...] | list[str] = (),
        capacity: int | None = None,
        prefix: Sequence[str] = (),
        args: Sequence[str] = (),
    ) -> str:
        """Start a new participant; returns its id once its live node exists. ``prefix``
        wraps its command (``["ip", "netns", "exec", NS]`` runs it in a network namespace;
        the wrapper must exec, so that signals reach the participant itself); ``args`` are
        more options of the ``participant`` command (``--metrics-port 0`` ...)."""
        inst = f"participant-{len(self.instances)}"
        command = [
            *self._base_args(),
            "participant",
            "--tasks",
            self.tasks,
            "--instance",
            inst,
            "--session-timeout",
            str(self.session_timeout),
        ]
        if tags:
            command += ["--tags", ",".join(tags)]
        if capacity is not None:
            command += ["--capacity", str(capacity)]
        self.instances.append(inst)
        self._procs[inst] = _Proc(inst, [*command, *args], self.log_dir, prefix)
        self.start_participant(inst)
        return inst

    def start_participant(self, inst: str) -> None:
        """Start ``inst`` again (same id, a new incarnation); returns once it is live."""
        before = self.incarnation(inst)
        self._procs[inst].start()
        self._wait_live(inst, lambda inc: inc is not None and inc != before)

    def kill_participant(self, inst: str) -> None:
        """SIGKILL ``inst`` (its live node lasts until its session expires)."""
        self._procs[inst].signal(signal.SIGKILL)
        self._procs[inst].wait(10)

    def stop_participant(self, inst: str, timeout: float = START_TIMEOUT) -> None:
        """SIGTERM ``inst`` (graceful); returns once its live node is gone."""
        self._procs[inst].signal(signal.SIGTERM)
        self._wait_live(inst, lambda inc: inc is None, timeout)
        self._procs[inst].wait(timeout)

    def incarnation(self, inst: str) -> int | None:
        """The incarnation in ``inst``'s live node, None when it is not live."""
        assert self._zk is not None
        try:
            data, _ = self._zk.get(self.paths.live_instance(inst))
        except Exception:
            return None
        return int(decode(data)["incarnation"])

    def _wait_live(
        self, inst: str, ok: Callable[[int | None], bool], timeout: float = START_TIMEOUT
    ) -> None:
        event = threading.Event()

        def wake(_e: Any) -> None:
            event.set()

        def read() -> bool | None:
            assert self._zk is not None
            self._zk.exists(self.paths.live_instance(inst), watch=wake)
            if not self._procs[inst].alive and not ok(None):
                raise ClusterUnavailable(f"{inst} exited:\n{self.logs()}")
            return True if ok(self.incarnation(inst)) else None

        self._wait(read, event, timeout, f"{inst} live state")

    def _wait(
        self, read: Callable[[], Any], event: threading.Event, timeout: float, what: str
    ) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            event.clear()
            value = read()
            if value is not None:
                return value
            left = deadline - time.monotonic()
            if left <= 0:
                raise ClusterUnavailable(f"timed out waiting for {what}")
            # The watch wakes us; the bound only guards against a watch lost to a reconnect.
            event.wait(min(left, 1.0))
