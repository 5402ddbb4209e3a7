"""The archive in S3-compatible object storage whose Object Lock enforces retention by itself.

The bucket must have Object Lock enabled (which turns versioning on). Every file is
written with mode COMPLIANCE and retain-until = the end of its retention day when that
is known, so no one, our own code, an operator with the keys or an attacker holding
them, can delete a version before then; legal hold maps to the S3 legal hold. A
retention date only ever moves later (COMPLIANCE allows nothing else).

`delete` removes every version of a key (a plain S3 delete would only hide it behind a
delete marker and keep the bytes); the server refuses a locked or held version, which
surfaces as PermissionError.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import PurePosixPath
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from archive.naming import check_relative

LOCK_MODE = "COMPLIANCE"
NOT_FOUND = {"404", "NoSuchKey", "NotFound", "NoSuchVersion"}


def lock_end(until: date) -> datetime:
    """A file kept "until" a day may go from the start of the next day (UTC), as in archive.retention."""
    return datetime.combine(until + timedelta(days=1), time(0), tzinfo=UTC)


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def make_client(endpoint: str | None, region: str, access_key: str | None, secret_key: str | None) -> Any:
    """The one place an S3 connection is made. Path-style addressing: SeaweedFS, MinIO
    and AWS all accept it, and it needs no DNS name per bucket."""
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint or None,
        region_name=region,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=10, read_timeout=60),
    )


class S3Storage:
    """Storage protocol on one Object Lock bucket; keys are the archive's relative paths."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    @classmethod
    def from_config(cls, cfg) -> S3Storage:
        """From the [archive] section: the keys are read from the environment variables it names
        (never from the file); with no names, boto3's own credential chain applies."""
        keys = []
        for name in (cfg.s3_access_key_env, cfg.s3_secret_key_env):
            if name and not os.environ.get(name):
                raise RuntimeError(f"archive.storage = 's3' needs the environment variable {name} to be set")
            keys.append(os.environ.get(name) if name else None)
        return cls(make_client(cfg.s3_endpoint, cfg.s3_region, keys[0], keys[1]), cfg.s3_bucket)

    def check_bucket(self) -> None:
        """RuntimeError unless the bucket exists with Object Lock enabled (call at start-up)."""
        try:
            conf = self.client.get_object_lock_configuration(Bucket=self.bucket)
        except ClientError as error:
            raise RuntimeError(f"bucket {self.bucket!r} has no Object Lock ({_code(error)}); create it with Object Lock enabled") from error
        if conf.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") != "Enabled":
            raise RuntimeError(f"bucket {self.bucket!r} has no Object Lock; create it with Object Lock enabled")

    def _key(self, path: PurePosixPath | str) -> str:
        return str(check_relative(path))

    def _versions(self, key: str) -> tuple[list[str], list[str]]:
        """The version ids of exactly `key`: (versions holding bytes, delete markers)."""
        versions, markers = [], []
        for page in self.client.get_paginator("list_object_versions").paginate(Bucket=self.bucket, Prefix=key):
            versions += [v["VersionId"] for v in page.get("Versions", []) if v["Key"] == key]
            markers += [m["VersionId"] for m in page.get("DeleteMarkers", []) if m["Key"] == key]
        return versions, markers

    # -- the five methods of the protocol ------------------------------------------------
    def put(self, path: PurePosixPath, data: bytes, *, retain_until: date | None = None) -> None:
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(path), "Body": data}
        if retain_until is not None and lock_end(retain_until) > datetime.now(UTC):
            # a date already past cannot be locked (and needs no lock)
            args.update(ObjectLockMode=LOCK_MODE, ObjectLockRetainUntilDate=lock_end(retain_until))
        self.client.put_object(**args)

    def get(self, path: PurePosixPath) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(path))["Body"].read()
        except ClientError as error:
            if _code(error) in NOT_FOUND:
                raise FileNotFoundError(str(path)) from error
            raise

    def exists(self, path: PurePosixPath) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(path))
            return True
        except ClientError as error:
            if _code(error) in NOT_FOUND:
                return False
            raise

    def delete(self, path: PurePosixPath) -> None:
        key = self._key(path)
        versions, markers = self._versions(key)
        if not versions:
            raise FileNotFoundError(str(path))
        for version_id in versions + markers:
            try:
                self.client.delete_object(Bucket=self.bucket, Key=key, VersionId=version_id)
            except ClientError as error:
                if _code(error) in ("AccessDenied", "InvalidRequest", "ObjectLocked"):
                    raise PermissionError(f"{path}: the storage refuses to delete version {version_id} (Object Lock: {_code(error)})") from error
                raise

    def list(self, prefix: str = "") -> Iterator[PurePosixPath]:
        keys = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            keys += [item["Key"] for item in page.get("Contents", []) if not item["Key"].endswith("/")]
        return iter(sorted(PurePosixPath(k) for k in keys))

    # -- what the lock enforces ----------------------------------------------------------
    def set_retention(self, path: PurePosixPath, until: date) -> None:
        """Every version of `path` kept through `until`; a version already kept longer is left
        as it is (COMPLIANCE cannot be shortened, and we never ask)."""
        key, end = self._key(path), lock_end(until)
        if end <= datetime.now(UTC):
            return
        for version_id in self._versions(key)[0]:
            current = self.retention(path, version_id)
            if current is not None and current >= end:
                continue
            self.client.put_object_retention(Bucket=self.bucket, Key=key, VersionId=version_id, Retention={"Mode": LOCK_MODE, "RetainUntilDate": end})

    def set_legal_hold(self, path: PurePosixPath, on: bool) -> None:
        key = self._key(path)
        for version_id in self._versions(key)[0]:
            self.client.put_object_legal_hold(Bucket=self.bucket, Key=key, VersionId=version_id, LegalHold={"Status": "ON" if on else "OFF"})

    def retention(self, path: PurePosixPath, version_id: str | None = None) -> datetime | None:
        """The lock end of a version (the newest by default), None if it has none."""
        args = {"Bucket": self.bucket, "Key": self._key(path)}
        if version_id:
            args["VersionId"] = version_id
        try:
            found = self.client.get_object_retention(**args).get("Retention", {})
        except ClientError as error:
            if _code(error) in ("NoSuchObjectLockConfiguration", "ObjectLockConfigurationNotFoundError"):
                return None
            raise
        return found.get("RetainUntilDate")
