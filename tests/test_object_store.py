"""The one S3 client's streamed reads against a real local S3 server (moto): what checks the bytes."""

from __future__ import annotations

import hashlib
import io
import threading

import boto3
import pytest
from botocore.config import Config

from idc_mcp import object_store
from tests.s3_fixture import add_public_bucket

NEVER = threading.Event()
DATA = bytes(range(256)) * 4096  # 1 MiB


@pytest.fixture(scope="module")
def objects(s3_mirror):
    """One object the store keeps a CRC32 for (boto3's default upload, as S3 does for new objects) and
    one without any checksum (like older objects: only the ETag = MD5)."""
    add_public_bucket(s3_mirror, "checksums-test", {"with-crc": DATA})
    bare = boto3.client(
        "s3",
        endpoint_url=s3_mirror.endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(request_checksum_calculation="when_required"),  # uploads without a checksum
    )
    bare.put_object(Bucket="checksums-test", Key="bare", Body=DATA, ACL="public-read")
    return s3_mirror


def stream(mirror, key: str, md5_if_store_checked: bool) -> tuple[object_store.Streamed, bytes]:  # type: ignore[no-untyped-def]
    client = object_store.make_client(mirror.endpoint, 2)
    out = io.BytesIO()
    got = object_store.stream_object(
        client, "checksums-test", key, out, NEVER, md5_if_store_checked=md5_if_store_checked
    )
    return got, out.getvalue()


def test_a_body_the_store_checksums_is_checked_by_it_and_not_hashed_again(objects):
    got, data = stream(objects, "with-crc", md5_if_store_checked=False)
    assert data == DATA and got.size == len(DATA)
    assert got.store_checksum == "crc32" and got.md5 is None
    assert got.etag.strip('"') == hashlib.md5(DATA).hexdigest()


def test_a_caller_that_wants_the_md5_gets_it_even_when_the_store_checked(objects):
    got, _ = stream(objects, "with-crc", md5_if_store_checked=True)
    assert got.store_checksum == "crc32" and got.md5 == hashlib.md5(DATA).hexdigest()


def test_a_body_without_a_store_checksum_is_hashed(objects):
    got, data = stream(objects, "bare", md5_if_store_checked=False)
    assert data == DATA and got.store_checksum is None and got.md5 == hashlib.md5(DATA).hexdigest()


def test_reply_timestamps_stay_text_nothing_parses_them(objects):
    # dateutil parsing LastModified of every listed object and every GET cost a tenth of a small-file
    # download's CPU; nothing reads them.
    client = object_store.make_client(objects.endpoint, 2)
    listed = object_store.list_objects(client, "checksums-test", "")
    assert listed and all(isinstance(o["LastModified"], str) for o in listed)
