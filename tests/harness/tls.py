"""TLS for tests: certificates made on the spot (a plant CA, a broker certificate for
127.0.0.1, a client certificate, and a stranger CA) and a mosquitto with a TLS listener
that requires client certificates."""

from __future__ import annotations

import datetime as dt
import getpass
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from shopfloor.shared.plant import Broker
from tests.harness.services import LOOPBACK, Service, require_binary


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(path: Path, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
    path.with_suffix(".key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    path.with_suffix(".pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _certificate(subject: str, key: ec.EllipticCurvePrivateKey, issuer: str,
                 issuer_key: ec.EllipticCurvePrivateKey, *, ca: bool) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(hours=1))
               .not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address(LOOPBACK))]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@dataclass
class Pki:
    ca: Path
    stranger_ca: Path
    broker: Path  # .pem / .key
    client: Path  # .pem / .key


def make_pki(folder: Path) -> Pki:
    folder.mkdir(parents=True, exist_ok=True)
    paths = Pki(folder / "ca.pem", folder / "stranger.pem", folder / "broker.pem",
                folder / "client.pem")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    _write(paths.ca, ca_key, _certificate("plant CA", ca_key, "plant CA", ca_key, ca=True))
    other_key = ec.generate_private_key(ec.SECP256R1())
    _write(paths.stranger_ca, other_key,
           _certificate("other CA", other_key, "other CA", other_key, ca=True))
    for path, subject in ((paths.broker, "broker"), (paths.client, "collector")):
        key = ec.generate_private_key(ec.SECP256R1())
        _write(path, key, _certificate(subject, key, "plant CA", ca_key, ca=False))
    return paths


class TlsMosquitto(Service):
    """mosquitto with one TLS listener that requires a client certificate of the CA."""

    name = "mosquitto"

    def __init__(self, workdir: Path, pki: Pki) -> None:
        super().__init__(workdir)
        self.pki = pki

    def command(self) -> list[str]:
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} {LOOPBACK}\nallow_anonymous true\n"
            f"cafile {self.pki.ca}\ncertfile {self.pki.broker}\n"
            f"keyfile {self.pki.broker.with_suffix('.key')}\nrequire_certificate true\n"
            f"user {getpass.getuser()}\nlog_dest stdout\n")
        return [require_binary("mosquitto"), "-c", str(conf)]


def tls_broker_settings(port: int, pki: Pki, *, ca: Path | None = None,
                        client_cert: bool = True) -> Broker:
    fields: dict[str, object] = {"host": LOOPBACK, "port": port, "keepalive_s": 5, "tls": True,
                                 "tls_ca_file": str(ca or pki.ca)}
    if client_cert:
        fields |= {"tls_cert_file": str(pki.client),
                   "tls_key_file": str(pki.client.with_suffix(".key"))}
    return Broker.model_validate(fields)
