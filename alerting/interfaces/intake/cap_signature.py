"""XML-DSig on CAP: verify an enveloped signature against the configured trusted certificates (signxml).

A certificate is trusted because the operator configured its PEM file, not because the document
carries it: the KeyInfo certificate in the message is only a hint. The check is made as of the
message's <sent> time, because CAP feeds are replayed and archived (the real IPAWS Cancel in our
test data is signed with a certificate that expired in 2018, and was valid when it was signed).
SHA-1 digests are accepted because IPAWS-OPEN still signs with them; the result says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from signxml import DigestAlgorithm, SignatureConfiguration, SignatureMethod, XMLVerifier
from signxml.exceptions import InvalidInput as SignxmlInvalidInput
from signxml.exceptions import InvalidSignature

from alerting.base.errors import InvalidInput


@dataclass(frozen=True)
class Verified:
    subject: str  # the trusted certificate's subject
    weak_digest: bool


def _subject(pem: bytes) -> str:
    return x509.load_pem_x509_certificate(pem).subject.rfc4514_string()


def verify(data: bytes, trusted: tuple[Path, ...], at: datetime) -> Verified:
    """Verify the enveloped signature of `data` with one of `trusted` (PEM files), as of `at`.

    Raises InvalidInput (field "Signature") when no trusted certificate verifies it, naming why.
    """
    config = SignatureConfiguration(signature_methods=frozenset(SignatureMethod),
                                    digest_algorithms=frozenset(DigestAlgorithm), verification_time=at)
    reasons = []
    for path in trusted:
        pem = path.read_bytes()
        try:
            result = XMLVerifier().verify(data, x509_cert=pem.decode(), expect_config=config)
        except (InvalidSignature, SignxmlInvalidInput) as exc:
            reasons.append(f"{path.name}: {str(exc).splitlines()[0][:200]}")
            continue
        weak = b"xmldsig#sha1" in data or b"rsa-sha1" in data
        del result
        return Verified(_subject(pem), weak)
    why = "; ".join(reasons) or "no trusted certificate is configured"
    raise InvalidInput(f"cap: the XML signature does not verify against any trusted certificate ({why})",
                       fields={"Signature": why})
