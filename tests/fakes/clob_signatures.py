"""How the CLOB checks who is asking, written from the protocol (eth_account + hmac), not from the client
library, so the fake CLOB catches a client that signs wrongly.

- L1 (API-key creation/derivation): an EIP-712 `ClobAuth` message signed by the wallet;
- L2 (trading): an HMAC-SHA256 of timestamp + method + path + body with the API secret;
- orders: an EIP-712 `Order` for the CTF Exchange V2 contract, signed by the order's signer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak

EXCHANGE_V2 = "0xE111180000d2663C0091e4f400237545B87B996B"
NEG_RISK_EXCHANGE_V2 = "0xe2222d279d744050d28e00520010520000310F59"
CLOB_AUTH_MESSAGE = "This message attests that I control the given wallet"
_DOMAIN_FIELDS = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
]
ORDER_FIELDS = [
    {"name": "salt", "type": "uint256"},
    {"name": "maker", "type": "address"},
    {"name": "signer", "type": "address"},
    {"name": "tokenId", "type": "uint256"},
    {"name": "makerAmount", "type": "uint256"},
    {"name": "takerAmount", "type": "uint256"},
    {"name": "side", "type": "uint8"},
    {"name": "signatureType", "type": "uint8"},
    {"name": "timestamp", "type": "uint256"},
    {"name": "metadata", "type": "bytes32"},
    {"name": "builder", "type": "bytes32"},
]


def _bytes32(value: str) -> bytes:
    return bytes.fromhex((value or "0x").removeprefix("0x").zfill(64))


def clob_auth_signer(chain_id: int, address: str, timestamp: str, nonce: int, signature: str) -> str | None:
    """The address that signed an L1 `ClobAuth` message, or None when the signature does not parse."""
    typed = {
        "primaryType": "ClobAuth",
        "types": {
            "EIP712Domain": _DOMAIN_FIELDS,
            "ClobAuth": [
                {"name": "address", "type": "address"},
                {"name": "timestamp", "type": "string"},
                {"name": "nonce", "type": "uint256"},
                {"name": "message", "type": "string"},
            ],
        },
        "domain": {"name": "ClobAuthDomain", "version": "1", "chainId": chain_id},
        "message": {"address": address, "timestamp": timestamp, "nonce": nonce, "message": CLOB_AUTH_MESSAGE},
    }
    try:
        return Account.recover_message(encode_typed_data(full_message=typed), signature=signature)
    except Exception:
        return None


def l2_signature(secret: str, timestamp: str, method: str, path: str, body: str) -> str:
    """The POLY_SIGNATURE an L2 request must carry."""
    message = timestamp + method + path + (body.replace("'", '"') if body else "")
    digest = hmac.new(base64.urlsafe_b64decode(secret), message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode()


def valid_l2_signature(secret: str, timestamp: str, method: str, path: str, body: str, signature: str) -> bool:
    """True when `signature` is the L2 HMAC of this request (compared in constant time)."""
    return hmac.compare_digest(l2_signature(secret, timestamp, method, path, body), signature)


def order_signer(order: dict[str, Any], chain_id: int, neg_risk: bool) -> tuple[str | None, str]:
    """(the address that signed this V2 order or None, the order hash the CLOB uses as the order id)."""
    typed = {
        "primaryType": "Order",
        "types": {
            "EIP712Domain": [*_DOMAIN_FIELDS, {"name": "verifyingContract", "type": "address"}],
            "Order": ORDER_FIELDS,
        },
        "domain": {
            "name": "Polymarket CTF Exchange",
            "version": "2",
            "chainId": chain_id,
            "verifyingContract": NEG_RISK_EXCHANGE_V2 if neg_risk else EXCHANGE_V2,
        },
        "message": {
            "salt": int(order["salt"]),
            "maker": order["maker"],
            "signer": order["signer"],
            "tokenId": int(order["tokenId"]),
            "makerAmount": int(order["makerAmount"]),
            "takerAmount": int(order["takerAmount"]),
            "side": 0 if order["side"] == "BUY" else 1,
            "signatureType": int(order["signatureType"]),
            "timestamp": int(order["timestamp"]),
            "metadata": _bytes32(order["metadata"]),
            "builder": _bytes32(order["builder"]),
        },
    }
    try:
        signable = encode_typed_data(full_message=typed)
        order_hash = "0x" + keccak(b"\x19" + signable.version + signable.header + signable.body).hex()
        return Account.recover_message(signable, signature=order["signature"]), order_hash
    except Exception:
        return None, ""
