"""API keys: the keys file, checking a presented key, and the command that manages the file.

The file (YAML, or JSON when its name ends in ``.json``) holds, per key, an id, the key's
SHA-256 hash — never the key — its scopes and an optional rate limit::

    keys:
      - id: ci
        sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
        scopes: [predict]
        rate_limit: 20/second;10000/day

Scopes: ``predict`` (every task endpoint), ``predict:<task>`` (one task), ``admin`` (model
reloads), ``metrics`` (``/metrics``). Keys are random 256-bit tokens, so an unsalted hash is
enough: there is no dictionary to try.

``python -m app.keys create --id ci --scopes predict --file keys.yaml`` adds a key and prints it
once, alone on its last line; ``list`` and ``revoke`` do what they say.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from limits import parse_many

log = logging.getLogger("app.keys")

TASKS = ("ner", "qa", "spectra", "headline")
SCOPES = ("predict", *(f"predict:{task}" for task in TASKS), "admin", "metrics")
KEY_PREFIX = "msk_"  # recognisable in a leaked-secret scan
_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_HEX = re.compile(r"^[0-9a-f]{64}$")


class KeysFileError(ValueError):
    """The keys file is missing or malformed; the message says where (never a key)."""


@dataclass(frozen=True)
class ApiKey:
    id: str
    sha256: str
    scopes: frozenset[str]
    rate_limit: str | None = None

    def allows(self, scope: str) -> bool:
        """``predict:ner`` is granted by ``predict:ner`` or by ``predict``."""
        return scope in self.scopes or (scope.startswith("predict:") and "predict" in self.scopes)

    def to_entry(self) -> dict:
        entry = {"id": self.id, "sha256": self.sha256, "scopes": sorted(self.scopes)}
        if self.rate_limit:
            entry["rate_limit"] = self.rate_limit
        return entry


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _entry(raw: object, index: int) -> ApiKey:
    where = f"keys[{index}]"
    if not isinstance(raw, dict):
        raise KeysFileError(f"{where} is not a mapping")
    unknown = set(raw) - {"id", "sha256", "scopes", "rate_limit"}
    if unknown:
        raise KeysFileError(f"{where} has unknown fields {sorted(unknown)} (a key itself must never be stored, only its sha256)")
    key_id, digest, scopes = raw.get("id"), raw.get("sha256"), raw.get("scopes")
    if not isinstance(key_id, str) or not _ID.match(key_id):
        raise KeysFileError(f"{where}.id must be 1–64 letters, digits, '.', '_' or '-'")
    if not isinstance(digest, str) or not _HEX.match(digest):
        raise KeysFileError(f"{where}.sha256 must be 64 lowercase hex digits")
    if not isinstance(scopes, list) or not scopes or any(s not in SCOPES for s in scopes):
        raise KeysFileError(f"{where}.scopes must be a non-empty list of {', '.join(SCOPES)}")
    rate_limit = raw.get("rate_limit")
    if rate_limit is not None:
        check_rate_limit(rate_limit, f"{where}.rate_limit")
    return ApiKey(key_id, digest, frozenset(scopes), rate_limit)


def check_rate_limit(value: object, where: str) -> str:
    """A rate limit in the ``limits`` notation ("20/second;10000/day"), or a KeysFileError."""
    try:
        if not isinstance(value, str) or not parse_many(value):
            raise ValueError
    except ValueError:
        raise KeysFileError(f'{where} must be like "20/second" or "100/minute;10000/day"') from None
    return value


def read_keys(path: Path) -> list[ApiKey]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise KeysFileError(f"cannot read the keys file ({exc.strerror})") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError):
        raise KeysFileError("the keys file is not valid YAML/JSON") from None
    if data is None:
        data = {"keys": []}
    if not isinstance(data, dict) or not isinstance(data.get("keys", []), list):
        raise KeysFileError("the keys file must be a mapping with a list under 'keys'")
    keys = [_entry(raw, i) for i, raw in enumerate(data.get("keys", []))]
    ids = [k.id for k in keys]
    if len(set(ids)) != len(ids):
        raise KeysFileError("the keys file repeats an id")
    return keys


def write_keys(path: Path, keys: list[ApiKey]) -> None:
    """Atomically, readable by the owner only (the hashes are not secrets, but nobody else needs them)."""
    data = {"keys": [k.to_entry() for k in keys]}
    text = json.dumps(data, indent=2) + "\n" if path.suffix == ".json" else yaml.safe_dump(data, sort_keys=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


@dataclass
class KeyStore:
    """The keys of one file, re-read when the file changes (checked at most once a second), so
    ``create`` and ``revoke`` take effect without a restart. A file that turns bad keeps the
    last good keys, and says why in the log."""

    path: Path
    recheck_s: float = 1.0
    _keys: list[ApiKey] = field(default_factory=list)
    _stamp: tuple[int, int] | None = None
    _checked: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._keys = read_keys(self.path)  # a bad file at start-up stops the service
        self._stamp = self._file_stamp()
        self._checked = time.monotonic()

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def keys(self) -> list[ApiKey]:
        now = time.monotonic()
        if now - self._checked >= self.recheck_s:
            with self._lock:
                self._checked = now
                stamp = self._file_stamp()
                if stamp != self._stamp:
                    self._stamp = stamp
                    try:
                        self._keys = read_keys(self.path)
                        log.info("keys file re-read", extra={"keys": len(self._keys)})
                    except KeysFileError as exc:
                        log.error("keys file invalid; the last good keys stay in force", extra={"reason": str(exc)})
        return self._keys

    def authenticate(self, presented: str) -> ApiKey | None:
        """The key whose hash matches, compared in constant time against every entry."""
        digest = hash_key(presented)
        found = None
        for key in self.keys():
            if hmac.compare_digest(digest, key.sha256):
                found = key
        return found


def _create(args: argparse.Namespace) -> int:
    keys = read_keys(args.file) if args.file.exists() else []
    if any(k.id == args.id for k in keys):
        print(f"a key with id {args.id!r} exists; revoke it first", file=sys.stderr)
        return 1
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    entry = _entry({"id": args.id, "sha256": hash_key(secret), "scopes": args.scopes, "rate_limit": args.rate_limit}, len(keys))
    write_keys(args.file, [*keys, entry])
    print(f"created key {args.id!r} ({', '.join(sorted(entry.scopes))}) in {args.file}; it is shown once, here:", file=sys.stderr)
    print(secret)
    return 0


def _list(args: argparse.Namespace) -> int:
    for key in read_keys(args.file):
        print(f"{key.id}\t{','.join(sorted(key.scopes))}\t{key.rate_limit or '-'}")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    keys = read_keys(args.file)
    kept = [k for k in keys if k.id != args.id]
    if len(kept) == len(keys):
        print(f"no key with id {args.id!r}", file=sys.stderr)
        return 1
    write_keys(args.file, kept)
    print(f"revoked key {args.id!r}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.keys", description="Manage the service's API keys file.")
    default_file = os.environ.get("APP_API_KEYS_FILE", "keys.yaml")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="add a key and print it once")
    create.add_argument("--id", required=True, help="a name for the key (logged; the key never is)")
    create.add_argument("--scopes", nargs="+", required=True, choices=SCOPES, metavar="SCOPE", help=f"of {', '.join(SCOPES)}")
    create.add_argument("--rate-limit", help='e.g. "20/second;10000/day" (default: the service\'s default_key_rate_limit)')
    listing = commands.add_parser("list", help="ids, scopes and limits (no keys: the file has none)")
    revoke = commands.add_parser("revoke", help="remove a key")
    revoke.add_argument("--id", required=True)
    for sub in (create, listing, revoke):
        sub.add_argument("--file", type=Path, default=Path(default_file), help=f"keys file (default: $APP_API_KEYS_FILE or keys.yaml; now {default_file})")
    args = parser.parse_args(argv)
    try:
        return {"create": _create, "list": _list, "revoke": _revoke}[args.command](args)
    except KeysFileError as exc:
        print(f"{args.file}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
