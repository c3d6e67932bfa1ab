"""gRPC security: TLS, mutual TLS and a bearer token on the controller's service."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

import pytest

from helixpy import JobConfig, TaskState, Workflow
from helixpy.driver import TaskDriver
from helixpy.errors import AccessDenied, ClusterUnavailable
from helixpy.security import ClientTls
from helixpy.testing import LocalCluster

pytestmark = pytest.mark.cluster
x509 = pytest.importorskip("cryptography.x509")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402


def _cert(
    path: Path,
    name: str,
    issuer: tuple[object, object] | None,
    *,
    ca: bool = False,
    dns: str = "localhost",
    ip: str | None = "127.0.0.1",
) -> tuple[object, object]:
    """Write ``name``.pem / ``name``.key; returns (certificate, key) for signing others."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_cert, issuer_key = issuer if issuer is not None else (None, key)
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject if issuer_cert is not None else subject)  # type: ignore[attr-defined]
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        names: list[x509.GeneralName] = [x509.DNSName(dns)]
        if ip is not None:
            names.append(x509.IPAddress(ipaddress.ip_address(ip)))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(issuer_key, hashes.SHA256())  # type: ignore[arg-type]
    (path / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (path / f"{name}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert, key


@pytest.fixture()
def pki(tmp_path: Path) -> Path:
    ca = _cert(tmp_path, "ca", None, ca=True)
    _cert(tmp_path, "server", ca)
    _cert(tmp_path, "client", ca)
    _cert(tmp_path, "named", ca, dns="helixpy-controller", ip=None)  # not its address
    other = _cert(tmp_path, "other-ca", None, ca=True)
    _cert(tmp_path, "stranger", other)
    return tmp_path


def _noop(name: str) -> Workflow:
    return Workflow.builder(name).add_job("j", JobConfig(command="Noop", num_tasks=1)).build()


def test_mutual_tls_with_a_token_serves_good_clients_and_refuses_the_rest(
    zk_address: str, pki: Path
) -> None:
    p = str(pki)
    good = ClientTls.from_files(f"{p}/ca.pem", f"{p}/client.pem", f"{p}/client.key")
    with LocalCluster(
        participants=1,
        zk=zk_address,
        extra_args=["--token", "s3cret"],
        controller_args=[
            "--tls-cert",
            f"{p}/server.pem",
            "--tls-key",
            f"{p}/server.key",
            "--tls-client-ca",
            f"{p}/ca.pem",
        ],
        driver_options={"tls": good, "token": "s3cret"},
    ) as cluster:
        # A client with the right CA, certificate and token is served
        cluster.driver.start(_noop("served"))
        assert (
            cluster.driver.poll_for_workflow_state("served", TaskState.COMPLETED, timeout=60)
            is TaskState.COMPLETED
        )

        def attempt(**kw: object) -> None:
            with TaskDriver(cluster.zk_address, cluster.cluster, timeout=3.0, **kw) as d:  # type: ignore[arg-type]
                d.start(_noop("refused"))

        # A bad token is refused at once, by name
        with pytest.raises(AccessDenied, match="UNAUTHENTICATED: missing or wrong bearer"):
            attempt(tls=good, token="guess")
        with pytest.raises(AccessDenied, match="UNAUTHENTICATED"):
            attempt(tls=good)
        # Plaintext, a client trusting another CA, and a certificate from another CA never
        # get a connection (reported with gRPC's reason when the timeout ends)
        with pytest.raises(ClusterUnavailable, match="UNAVAILABLE"):
            attempt(token="s3cret")
        with pytest.raises(ClusterUnavailable, match="UNAVAILABLE"):
            attempt(
                tls=ClientTls.from_files(f"{p}/other-ca.pem", f"{p}/client.pem", f"{p}/client.key"),
                token="s3cret",
            )
        with pytest.raises(ClusterUnavailable, match="UNAVAILABLE"):
            attempt(
                tls=ClientTls.from_files(f"{p}/ca.pem", f"{p}/stranger.pem", f"{p}/stranger.key"),
                token="s3cret",
            )
        assert "refused" not in cluster.driver.get_workflows()


def test_the_cli_talks_tls_with_a_token(zk_address: str, pki: Path) -> None:
    import os
    import subprocess
    import sys

    p = str(pki)
    with LocalCluster(
        participants=0,
        zk=zk_address,
        extra_args=["--token", "t0k"],
        controller_args=["--tls-cert", f"{p}/server.pem", "--tls-key", f"{p}/server.key"],
        driver_options={"tls": ClientTls.from_files(f"{p}/ca.pem"), "token": "t0k"},
    ) as cluster:
        env = {**os.environ, "HELIXPY_ZK": cluster.zk_address, "HELIXPY_CLUSTER": cluster.cluster}
        base = [sys.executable, "-m", "helixpy.cli", "--tls-ca", f"{p}/ca.pem"]
        ok = subprocess.run(
            [*base, "--token", "t0k", "queue", "create", "q"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert ok.returncode == 0, ok.stderr
        bad = subprocess.run(
            [*base, "--token", "nope", "queue", "create", "q2"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert bad.returncode != 0 and "missing or wrong bearer token" in bad.stderr
        assert "Traceback" not in bad.stderr
        missing = subprocess.run(
            [*base, "--tls-client-cert", f"{p}/client.pem", "queue", "create", "q3"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert missing.returncode != 0 and "tls_client_cert" in missing.stderr


def test_the_cli_checks_a_given_server_name_when_the_address_is_not_in_the_certificate(
    zk_address: str, pki: Path
) -> None:
    import os
    import subprocess
    import sys

    p = str(pki)
    # Given a controller whose certificate names "helixpy-controller", not the address it
    # advertises (as with controllers advertising pod IPs)
    with LocalCluster(
        participants=0,
        zk=zk_address,
        controller_args=["--tls-cert", f"{p}/named.pem", "--tls-key", f"{p}/named.key"],
        driver_options={
            "tls": ClientTls.from_files(f"{p}/ca.pem", server_name="helixpy-controller"),
            "timeout": 5.0,
        },
    ) as cluster:
        env = {**os.environ, "HELIXPY_ZK": cluster.zk_address, "HELIXPY_CLUSTER": cluster.cluster}
        base = [sys.executable, "-m", "helixpy.cli", "--tls-ca", f"{p}/ca.pem"]
        # When a client checks the address, the handshake fails; with the name, it works
        refused = subprocess.run(
            [*base, "queue", "create", "q1"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert refused.returncode != 0 and "Traceback" not in refused.stderr
        named = subprocess.run(
            [*base, "--tls-server-name", "helixpy-controller", "queue", "create", "q2"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert named.returncode == 0, named.stderr
        assert set(cluster.driver.get_workflows()) == {"q2"}
