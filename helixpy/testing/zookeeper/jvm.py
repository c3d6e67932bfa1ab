"""How the ZooKeeper JVMs are launched and supervised.

Main classes, JVM flags, the logging configuration every server gets, and the polling
and shutdown timeouts shared by the background servers and the foreground one.
"""

from __future__ import annotations

_STANDALONE_MAIN = "org.apache.zookeeper.server.ZooKeeperServerMain"
_QUORUM_MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"

# Short enough for a responsive wait, long enough not to busy-spin a 2-core machine that is
# also running three JVMs.
_POLL_INTERVAL = 0.05
_DEFAULT_START_TIMEOUT = 30.0
_DEFAULT_STOP_TIMEOUT = 10.0
_KILL_REAP_TIMEOUT = 5.0

_LOG_PATTERN = "%d{ISO8601} [myid:%X{myid}] - %-5p [%t:%C{1}@%L] - %m%n"
# Every server logs to stdout; the supervisor decides where stdout goes (a file for the
# background servers, the terminal for run_foreground). One config per backend, because
# which one applies depends on the ZooKeeper build: log4j 1.2 for Debian and upstream
# <= 3.7, logback for upstream >= 3.8. Passing both system properties is harmless.
# NIOServerCnxn logs every four-letter word at INFO; our start-up and leader polls would
# drown the interesting lines of a failing test's log tail in "Processing srvr command".
_LOG4J_PROPERTIES = f"""\
log4j.rootLogger=INFO, CONSOLE
log4j.logger.org.apache.zookeeper.server.NIOServerCnxn=WARN
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.Target=System.out
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern={_LOG_PATTERN}
"""
_LOGBACK_XML = f"""\
<configuration>
  <appender name="CONSOLE" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>{_LOG_PATTERN}</pattern></encoder>
  </appender>
  <logger name="org.apache.zookeeper.server.NIOServerCnxn" level="WARN"/>
  <root level="INFO"><appender-ref ref="CONSOLE"/></root>
</configuration>
"""

# JVM flags chosen for start-up speed and a small footprint: three servers have to come up
# in a few seconds on two cores next to the test process. The serial collector starts fewer
# threads, -UsePerfData avoids hsperfdata files in /tmp, and a bounded heap keeps three
# JVMs from each reserving a quarter of the machine.
_JVM_FLAGS = (
    "-Xms32m",
    "-Xmx512m",
    "-XX:+UseSerialGC",
    "-XX:-UsePerfData",
    "-Djava.net.preferIPv4Stack=true",
    "-Dzookeeper.jmx.log4j.disable=true",
    # Leader election backs off exponentially (up to 60 s by default) while peers are
    # unreachable; a 1 s ceiling keeps a restarted or slow-starting quorum converging fast.
    "-Dzookeeper.fastleader.maxNotificationInterval=1000",
)
