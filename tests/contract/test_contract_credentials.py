"""Client ids and certificates: length limits, EIP-191 signatures recovered on chain, rotation."""

from __future__ import annotations

import hashlib

import pytest

ZERO = b"\x00" * 32
ZERO_ADDRESS = "0x" + "00" * 20


def fingerprint(label: str) -> bytes:
    """A SHA-256 fingerprint, as of a DER certificate's bytes."""
    return hashlib.sha256(f"certificate {label}".encode()).digest()


# ------------------------------------------------------------------ client ids


@pytest.mark.parametrize("client_id", ["a", "acme-tracker", "x" * 64, "ünïcode"])
def test_register_client_id(contract, owner, events, client_id):
    receipt = contract.registerClientId(client_id, sender=owner)
    assert events(receipt) == [("ClientIdRegistered", {"account": owner.address, "clientId": client_id})]
    assert contract.clientIdOf(owner) == client_id


def test_client_id_is_replaced_and_per_account(contract, owner, other):
    contract.registerClientId("first", sender=owner)
    contract.registerClientId("second", sender=owner)
    assert contract.clientIdOf(owner) == "second"
    assert contract.clientIdOf(other) == ""


@pytest.mark.parametrize("client_id, length", [("", 0), ("x" * 65, 65), ("é" * 33, 66)])
def test_client_id_length_limits(contract, owner, expect_revert, client_id, length):
    with expect_revert("InvalidClientId", length=length):
        contract.registerClientId(client_id, sender=owner)
    assert contract.clientIdOf(owner) == ""


# ------------------------------------------------------------------ certificates


def test_register_certificate(contract, owner, sign, events, block_time):
    signature = sign(owner, fingerprint("one"))
    assert len(signature) == 65
    receipt = contract.registerCertificate(fingerprint("one"), signature, sender=owner)
    assert events(receipt) == [
        ("CertificateRegistered", {"account": owner.address, "fingerprint": fingerprint("one"), "signature": signature})
    ]
    registered, stored_signature, registered_at = contract.certificateOf(owner)
    assert (bytes(registered), bytes(stored_signature)) == (fingerprint("one"), signature)
    assert registered_at == block_time(receipt)


def test_signature_by_the_accounts_ape_signer_is_accepted(contract, owner):
    from eth_account.messages import encode_defunct

    signature = owner.sign_message(encode_defunct(primitive=fingerprint("ape"))).encode_rsv()
    contract.registerCertificate(fingerprint("ape"), signature, sender=owner)
    assert bytes(contract.certificateOf(owner)[0]) == fingerprint("ape")


def test_certificate_signed_by_another_key_reverts(contract, owner, other, sign, expect_revert):
    signature = sign(other, fingerprint("one"))
    with expect_revert("CertificateSignerMismatch", signer=other.address, sender=owner.address):
        contract.registerCertificate(fingerprint("one"), signature, sender=owner)
    assert bytes(contract.certificateOf(owner)[0]) == ZERO


def recovered(fingerprint_bytes: bytes, signature: bytes) -> str:
    """The address an EIP-191 signature of the fingerprint recovers to, computed off chain."""
    from eth_account import Account
    from eth_account.messages import encode_defunct

    return Account.recover_message(encode_defunct(primitive=fingerprint_bytes), signature=signature)


def test_signature_of_another_fingerprint_reverts(contract, owner, sign, expect_revert):
    signature = sign(owner, fingerprint("two"))
    signer = recovered(fingerprint("one"), signature)
    assert signer not in (owner.address, ZERO_ADDRESS)
    with expect_revert("CertificateSignerMismatch", signer=signer, sender=owner.address):
        contract.registerCertificate(fingerprint("one"), signature, sender=owner)


def test_unrecoverable_signature_reports_zero_signer(contract, owner, sign, expect_revert):
    with expect_revert("CertificateSignerMismatch", signer=ZERO_ADDRESS, sender=owner.address):
        contract.registerCertificate(fingerprint("one"), b"\x01" * 64, sender=owner)
    broken = bytearray(sign(owner, fingerprint("one")))
    broken[64] = 5  # v must be 27 or 28
    with expect_revert("CertificateSignerMismatch", signer=ZERO_ADDRESS, sender=owner.address):
        contract.registerCertificate(fingerprint("one"), bytes(broken), sender=owner)


def test_raw_unprefixed_signature_is_refused(contract, owner, expect_revert):
    """A signature of the bare digest (no EIP-191 prefix) must not pass as the owner's."""
    from eth_account import Account

    raw = bytes(Account._sign_hash(fingerprint("one"), owner.private_key).signature)
    signer = recovered(fingerprint("one"), raw)
    assert signer != owner.address
    with expect_revert("CertificateSignerMismatch", signer=signer, sender=owner.address):
        contract.registerCertificate(fingerprint("one"), raw, sender=owner)


def test_zero_fingerprint_reverts(contract, owner, sign, expect_revert):
    with expect_revert("ZeroIdentifier"):
        contract.registerCertificate(ZERO, sign(owner, ZERO), sender=owner)


def test_rotation_emits_new_event_and_latest_wins(contract, owner, other, sign, events, chain):
    contract.registerCertificate(fingerprint("one"), sign(owner, fingerprint("one")), sender=owner)
    rotation = (fingerprint("two"), sign(owner, fingerprint("two")))
    # Sent with headroom, as the tracker's own sends are: estimated in the first registration's
    # second, rewriting its timestamp costs 2,800 gas less than in the next second, where the
    # transaction may be mined (then ReentrancySentryOOG at the last store, EIP-2200).
    estimate = contract.registerCertificate.estimate_gas_cost(*rotation, sender=owner)
    rotated = contract.registerCertificate(*rotation, sender=owner, gas=estimate * 6 // 5)
    assert events(rotated) == [
        (
            "CertificateRegistered",
            {"account": owner.address, "fingerprint": fingerprint("two"), "signature": sign(owner, fingerprint("two"))},
        )
    ]
    assert bytes(contract.certificateOf(owner)[0]) == fingerprint("two")
    assert bytes(contract.certificateOf(owner)[1]) == sign(owner, fingerprint("two"))
    logs = contract.CertificateRegistered.range(chain.blocks.height + 1)
    history = [(log.account, bytes(log.fingerprint)) for log in logs]
    assert history == [(owner.address, fingerprint("one")), (owner.address, fingerprint("two"))]
    assert bytes(contract.certificateOf(other)[0]) == ZERO


def test_certificate_of_unregistered_account_is_empty(contract, other):
    fp, signature, registered_at = contract.certificateOf(other)
    assert (bytes(fp), bytes(signature), registered_at) == (ZERO, b"", 0)
