"""Ed25519 keys of the community manager: files, and signing and checking bytes.

A key pair is two PEM files: the private key (PKCS#8, unencrypted, mode 0600: readable by its
owner only) and the public key (`.pub`, SubjectPublicKeyInfo). In the ledger a public key is
its 32 raw bytes in hexadecimal (64 characters).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from p2pmarket.errors import LedgerError
from p2pmarket.io.atomic import atomic_bytes

__all__ = [
    "generate_keypair",
    "load_private_key",
    "load_public_key",
    "public_key_hex",
    "public_key_path",
    "sign",
    "signature_valid",
]


def public_key_path(private_key_path: Path) -> Path:
    """Where `keygen` writes the public key of `private_key_path`: beside it, `.pub` added."""
    return private_key_path.with_name(private_key_path.name + ".pub")


def generate_keypair(private_key_path: Path, *, overwrite: bool = False) -> tuple[Path, Path]:
    """Write a new key pair: the private key at `private_key_path` (mode 0600 from the moment
    it is created, never readable by others) and the public key beside it with `.pub` added.
    Existing files, symbolic links among them (dangling or not), are refused unless
    `overwrite`; then the link itself is replaced and the file it points to left as it was.
    Both files are written to temporary files (unpredictable names, `O_EXCL | O_NOFOLLOW`) and
    renamed into place together: a key pair is written whole or not at all. Returns both
    paths."""
    public_path = public_key_path(private_key_path)
    for path in (private_key_path, public_path):
        if os.path.lexists(path) and not overwrite:
            what = " (a symbolic link)" if path.is_symlink() else ""
            raise LedgerError(f"{path} exists{what}; refusing to overwrite a key (use --force)")
        if path.is_dir() and not path.is_symlink():
            raise LedgerError(f"{path} is a directory; give a file name for the key")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    try:
        with (
            atomic_bytes(private_key_path, mode=0o600) as private_file,
            atomic_bytes(public_path) as public_file,
        ):
            private_file.write(private_pem)
            public_file.write(public_pem)
    except OSError as exc:
        where = exc.filename or private_key_path
        raise LedgerError(f"cannot write {where}: {exc.strerror or exc}") from exc
    return private_key_path, public_path


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 private key in a PEM file written by `generate_keypair`. A file that others
    can read is refused, as ssh refuses it."""
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as exc:
        raise LedgerError(f"cannot read the private key {path}: {exc.strerror}") from exc
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise LedgerError(
            f"private key {path} is accessible by others (mode {stat.S_IMODE(mode):04o}); "
            f"run chmod 600 {path}"
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise LedgerError(f"{path} is not an unencrypted PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise LedgerError(f"{path} is not an Ed25519 private key")
    return key


def load_public_key(path: Path) -> str:
    """The public key in a file, as ledger hex: a PEM public key, or 64 hexadecimal characters."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LedgerError(f"cannot read the public key {path}: {exc.strerror}") from exc
    text = data.decode("ascii", errors="replace").strip()
    if len(text) == 64 and all(c in "0123456789abcdefABCDEF" for c in text):
        return text.lower()
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise LedgerError(f"{path} is not a PEM public key nor 64 hexadecimal digits") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise LedgerError(f"{path} is not an Ed25519 public key")
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def public_key_hex(key: Ed25519PrivateKey) -> str:
    """The public half of `key` as ledger hex (64 characters)."""
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        .hex()
    )


def sign(key: Ed25519PrivateKey, data: bytes) -> str:
    """The Ed25519 signature of `data` in hex (128 characters; deterministic)."""
    return key.sign(data).hex()


def signature_valid(public_key: str, signature: str, data: bytes) -> bool:
    """Whether `signature` (hex) is `public_key`'s (hex) signature of `data`."""
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key)).verify(
            bytes.fromhex(signature), data
        )
    except (ValueError, InvalidSignature):
        return False
    return True
