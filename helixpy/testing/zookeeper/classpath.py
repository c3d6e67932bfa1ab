"""Locating ZooKeeper: the jars for the Java classpath, and the ``java`` binary."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from helixpy.testing.zookeeper.errors import ZooKeeperNotFound

# One logger for the whole package, named as when it was a single module, so that
# logging configuration and log records are unchanged by the split.
log = logging.getLogger("helixpy.testing.zookeeper")

CLASSPATH_ENV = "HELIXPY_ZOOKEEPER_CLASSPATH"
HOME_ENV = "ZOOKEEPER_HOME"

NOT_FOUND_MESSAGE = (
    "ZooKeeper jars not found: install Debian's `zookeeper` package (apt-get install zookeeper)"
    " or set ZOOKEEPER_HOME / HELIXPY_ZOOKEEPER_CLASSPATH"
)

# Debian ships no jars under /usr/share/zookeeper (only scripts); they live in /usr/share/java.
_DEBIAN_HOME = Path("/usr/share/zookeeper")
_DEBIAN_JAVA_DIR = Path("/usr/share/java")
# The smallest set a standalone server and a quorum peer were found to need on Debian 12
# (ZooKeeper 3.8.0): metrics-core backs ZooKeeper's default metrics provider and snappy-java
# is loaded by the snapshot code even when compression is off. Netty, Jetty, Jackson and
# commons-cli are only used by the Netty connection factory, the admin server and the CLI,
# none of which we enable. (zookeeper.jar's manifest Class-Path names all of them anyway, so
# listing them explicitly would only repeat it.)
_DEBIAN_REQUIRED_JARS = (
    "zookeeper.jar",
    "zookeeper-jute.jar",
    "slf4j-api.jar",
    "metrics-core.jar",
    "snappy-java.jar",
)
# Debian patches ZooKeeper to log through log4j 1.2 (upstream 3.8 uses logback) but puts no
# SLF4J binding on the classpath, so without these two jars the server logs nothing at all.
_DEBIAN_LOGGING_JARS = ("slf4j-log4j12.jar", "log4j-1.2.jar")


def find_zookeeper_classpath() -> str:
    """Return a Java classpath that runs a ZooKeeper server.

    Looked up in this order:

    1. ``HELIXPY_ZOOKEEPER_CLASSPATH``, used verbatim (an empty value counts as unset);
    2. ``ZOOKEEPER_HOME``: every ``*.jar`` in ``$ZOOKEEPER_HOME/lib`` and
       ``$ZOOKEEPER_HOME`` (an upstream binary tarball); Debian's ``/usr/share/zookeeper``,
       which holds no jars, maps to the Debian layout below;
    3. the Debian ``zookeeper`` package's jars in ``/usr/share/java``.

    Raises:
        ZooKeeperNotFound: nothing usable was found. A ``ZOOKEEPER_HOME`` without jars is an
            error rather than a reason to fall back to Debian, so that a misconfigured home
            is reported instead of silently running another ZooKeeper.
    """
    explicit = os.environ.get(CLASSPATH_ENV, "")
    if explicit:
        return explicit
    home = os.environ.get(HOME_ENV, "")
    if home:
        return _home_classpath(Path(home))
    return _debian_classpath(_DEBIAN_JAVA_DIR)


def _home_classpath(home: Path) -> str:
    jars = sorted((home / "lib").glob("*.jar")) + sorted(home.glob("*.jar"))
    if jars:
        return os.pathsep.join(str(jar) for jar in jars)
    if home.resolve() == _DEBIAN_HOME:
        return _debian_classpath(_DEBIAN_JAVA_DIR)
    raise ZooKeeperNotFound(
        f"{NOT_FOUND_MESSAGE} ({HOME_ENV}={home} has no *.jar in lib/ or at its top level)"
    )


def _debian_classpath(java_dir: Path) -> str:
    missing = [name for name in _DEBIAN_REQUIRED_JARS if not (java_dir / name).is_file()]
    if missing:
        raise ZooKeeperNotFound(f"{NOT_FOUND_MESSAGE} (missing in {java_dir}: {missing})")
    jars = [java_dir / name for name in _DEBIAN_REQUIRED_JARS]
    logging_jars = [java_dir / name for name in _DEBIAN_LOGGING_JARS]
    absent_logging = [jar.name for jar in logging_jars if not jar.is_file()]
    if absent_logging:
        # The server still runs, only silently; say so because an empty log makes a failing
        # test much harder to diagnose.
        log.warning(
            "ZooKeeper will run without logging: %s not found in %s", absent_logging, java_dir
        )
    jars += [jar for jar in logging_jars if jar.is_file()]
    return os.pathsep.join(str(jar) for jar in jars)


def _find_java() -> str:
    """The ``java`` binary: ``$JAVA_HOME/bin/java`` if set, else the first on ``PATH``."""
    java_home = os.environ.get("JAVA_HOME", "")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if candidate.is_file():
            return str(candidate)
    found = shutil.which("java")
    if found is None:
        raise ZooKeeperNotFound(
            "java not found on PATH (or in $JAVA_HOME/bin): install a JRE (apt-get install"
            " default-jre-headless) to run ZooKeeper"
        )
    return found
