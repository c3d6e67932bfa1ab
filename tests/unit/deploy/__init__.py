"""The deployment files under deploy/, checked without a container engine or a cluster.

Every ``helixpy`` command line in them (the Dockerfile's CMD and HEALTHCHECK, compose
commands and healthchecks, Kubernetes args and probes, systemd ExecStart lines) is parsed
against the real click command tree of ``helixpy.cli.main``: the subcommand path must
exist, every option must belong to the command it follows (or to the global group before
it), literal values must convert to the option's type, and required options must be
there. Then what the files must agree on: healthcheck and probe ports against
``--metrics-port``, published and Service ports against ``--grpc-port``, stop grace
periods against the participant's ``--grace``, the ZooKeeper ensemble against
``HELIXPY_ZK``, secrets and TLS paths against what is mounted, and that every file the
compose file or the kustomization names exists.

The checker itself is tested in ``test_cli_lines.py`` (``test_checker_*``), with command
lines that are wrong on purpose.
"""
