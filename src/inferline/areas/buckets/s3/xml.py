"""S3's XML bodies: results, errors, and the few request documents (multipart completion, batch delete)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime
from email.utils import format_datetime
from urllib.parse import quote

from inferline.areas.buckets.objects import ListPage, PartInfo, UploadsPage
from inferline.stores.objects import BucketInfo

NS = "http://s3.amazonaws.com/doc/2006-03-01/"


def iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def http_date(when: datetime) -> str:
    return format_datetime(when, usegmt=True)


def _doc(root: str, *children: tuple[str, str | None]) -> ET.Element:
    element = ET.Element(root, xmlns=NS)
    for name, value in children:
        if value is not None:
            ET.SubElement(element, name).text = value
    return element


def render(element: ET.Element) -> bytes:
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(element, encoding="utf-8")


def error(code: str, message: str, resource: str, request_id: str) -> bytes:
    root = ET.Element("Error")
    for name, value in (
        ("Code", code),
        ("Message", message),
        ("Resource", resource),
        ("RequestId", request_id),
    ):
        ET.SubElement(root, name).text = value
    return render(root)


def list_buckets(tenant_id: str, buckets: list[BucketInfo]) -> bytes:
    root = _doc("ListAllMyBucketsResult")
    owner = ET.SubElement(root, "Owner")
    ET.SubElement(owner, "ID").text = tenant_id
    ET.SubElement(owner, "DisplayName").text = tenant_id
    items = ET.SubElement(root, "Buckets")
    for bucket in buckets:
        node = ET.SubElement(items, "Bucket")
        ET.SubElement(node, "Name").text = bucket.name
        ET.SubElement(node, "CreationDate").text = iso(bucket.created_at)
    return render(root)


def list_objects(
    bucket: str,
    page: ListPage,
    *,
    prefix: str,
    delimiter: str,
    max_keys: int,
    url_encode: bool,
    v2: bool,
    token: str | None = None,
    start_after: str = "",
    marker: str = "",
) -> bytes:
    """ListBucketResult for ListObjectsV2 (`v2`) or the original ListObjects (marker-based)."""

    def enc(value: str) -> str:
        return quote(value, safe="/") if url_encode else value

    root = _doc("ListBucketResult", ("Name", bucket), ("Prefix", enc(prefix)))
    if v2:
        ET.SubElement(root, "KeyCount").text = str(len(page.contents) + len(page.common_prefixes))
        if token:
            ET.SubElement(root, "ContinuationToken").text = token
        if page.next_token:
            ET.SubElement(root, "NextContinuationToken").text = page.next_token
        if start_after:
            ET.SubElement(root, "StartAfter").text = enc(start_after)
    else:
        ET.SubElement(root, "Marker").text = enc(marker)
        if page.is_truncated and delimiter:
            last = [*(o.key for o in page.contents), *page.common_prefixes]
            ET.SubElement(root, "NextMarker").text = enc(max(last))
    ET.SubElement(root, "MaxKeys").text = str(max_keys)
    if delimiter:
        ET.SubElement(root, "Delimiter").text = enc(delimiter)
    if url_encode:
        ET.SubElement(root, "EncodingType").text = "url"
    ET.SubElement(root, "IsTruncated").text = "true" if page.is_truncated else "false"
    for obj in page.contents:
        node = ET.SubElement(root, "Contents")
        ET.SubElement(node, "Key").text = enc(obj.key)
        ET.SubElement(node, "LastModified").text = iso(obj.last_modified)
        ET.SubElement(node, "ETag").text = f'"{obj.etag}"'
        ET.SubElement(node, "Size").text = str(obj.size)
        ET.SubElement(node, "StorageClass").text = "STANDARD"
    for common in page.common_prefixes:
        ET.SubElement(ET.SubElement(root, "CommonPrefixes"), "Prefix").text = enc(common)
    return render(root)


def location() -> bytes:
    return render(ET.Element("LocationConstraint", xmlns=NS))


def initiate_upload(bucket: str, key: str, upload_id: str) -> bytes:
    return render(
        _doc("InitiateMultipartUploadResult", ("Bucket", bucket), ("Key", key), ("UploadId", upload_id))
    )


def complete_upload(location_url: str, bucket: str, key: str, etag: str) -> bytes:
    return render(
        _doc(
            "CompleteMultipartUploadResult",
            ("Location", location_url),
            ("Bucket", bucket),
            ("Key", key),
            ("ETag", f'"{etag}"'),
        )
    )


def _owner(parent: ET.Element, tag: str, tenant_id: str) -> None:
    node = ET.SubElement(parent, tag)
    ET.SubElement(node, "ID").text = tenant_id
    ET.SubElement(node, "DisplayName").text = tenant_id


def list_parts(
    bucket: str,
    key: str,
    upload_id: str,
    tenant_id: str,
    parts: list[PartInfo],
    *,
    marker: int,
    max_parts: int,
    truncated: bool,
) -> bytes:
    root = _doc("ListPartsResult", ("Bucket", bucket), ("Key", key), ("UploadId", upload_id))
    _owner(root, "Initiator", tenant_id)
    _owner(root, "Owner", tenant_id)
    ET.SubElement(root, "StorageClass").text = "STANDARD"
    ET.SubElement(root, "PartNumberMarker").text = str(marker)
    ET.SubElement(root, "NextPartNumberMarker").text = str(parts[-1].number if parts else marker)
    ET.SubElement(root, "MaxParts").text = str(max_parts)
    ET.SubElement(root, "IsTruncated").text = "true" if truncated else "false"
    for part in parts:
        node = ET.SubElement(root, "Part")
        ET.SubElement(node, "PartNumber").text = str(part.number)
        ET.SubElement(node, "LastModified").text = iso(part.last_modified)
        ET.SubElement(node, "ETag").text = f'"{part.etag}"'
        ET.SubElement(node, "Size").text = str(part.size)
    return render(root)


def list_uploads(
    bucket: str,
    tenant_id: str,
    page: UploadsPage,
    *,
    prefix: str,
    delimiter: str,
    key_marker: str,
    upload_id_marker: str,
    max_uploads: int,
    url_encode: bool,
) -> bytes:
    """ListMultipartUploadsResult: uploads by key then initiation, with the markers of the next page."""

    def enc(value: str) -> str:
        return quote(value, safe="/") if url_encode else value

    root = _doc(
        "ListMultipartUploadsResult",
        ("Bucket", bucket),
        ("KeyMarker", enc(key_marker)),
        ("UploadIdMarker", upload_id_marker),
        ("NextKeyMarker", enc(page.next_key_marker)),
        ("NextUploadIdMarker", page.next_upload_id_marker),
        ("Prefix", enc(prefix)),
        ("Delimiter", enc(delimiter) if delimiter else None),
        ("MaxUploads", str(max_uploads)),
        ("EncodingType", "url" if url_encode else None),
        ("IsTruncated", "true" if page.is_truncated else "false"),
    )
    for upload in page.uploads:
        node = ET.SubElement(root, "Upload")
        ET.SubElement(node, "Key").text = enc(upload.key)
        ET.SubElement(node, "UploadId").text = upload.upload_id
        _owner(node, "Initiator", tenant_id)
        _owner(node, "Owner", tenant_id)
        ET.SubElement(node, "StorageClass").text = "STANDARD"
        ET.SubElement(node, "Initiated").text = iso(upload.initiated)
    for common in page.common_prefixes:
        ET.SubElement(ET.SubElement(root, "CommonPrefixes"), "Prefix").text = enc(common)
    return render(root)


def copy_result(etag: str, modified: datetime) -> bytes:
    return render(_doc("CopyObjectResult", ("LastModified", iso(modified)), ("ETag", f'"{etag}"')))


def delete_result(keys: list[str], quiet: bool) -> bytes:
    root = _doc("DeleteResult")
    for key in [] if quiet else keys:
        ET.SubElement(ET.SubElement(root, "Deleted"), "Key").text = key
    return render(root)


def _strip(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _parse(body: bytes) -> ET.Element:
    try:
        return ET.fromstring(body)
    except ET.ParseError as exc:
        raise ValueError(f"malformed XML: {exc}") from None


def parse_complete(body: bytes) -> list[tuple[int, str]]:
    """(part number, etag) pairs of a CompleteMultipartUpload document."""
    parts = []
    for node in _parse(body):
        if _strip(node.tag) != "Part":
            continue
        fields = {_strip(child.tag): (child.text or "") for child in node}
        parts.append((int(fields.get("PartNumber", "0")), fields.get("ETag", "")))
    return parts


def parse_delete(body: bytes) -> tuple[list[str], bool]:
    """(keys, quiet) of a DeleteObjects document."""
    root = _parse(body)
    keys, quiet = [], False
    for node in root:
        if _strip(node.tag) == "Quiet":
            quiet = (node.text or "").strip().lower() == "true"
        elif _strip(node.tag) == "Object":
            for child in node:
                if _strip(child.tag) == "Key":
                    keys.append(child.text or "")
    return keys, quiet
