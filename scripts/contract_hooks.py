"""What /openapi.json cannot say, told to schemathesis (loaded through SCHEMATHESIS_HOOKS by
scripts/contract): every binary value and every base64 image field in Librarian's API is a
photo, and a photo must decode. Without this the fuzzer's "valid" photos are random bytes,
PDFs and ZIPs, which the service rightly answers 415, and positive_data_acceptance could not
run.

Binary values are drawn as photos. Base64 fields are drawn from their pattern (the coverage
phase takes the pattern's edge cases), so just before a request a base64 field that the
pattern admits but that holds no photo gets a photo instead; schemathesis then checks the case
again, so a case meant to break the schema still breaks it.

Likewise the labels: the document says in words that an integer in the JSON text must fit in
64 bits (a JSON Schema cannot tell the integer 10**20 from the float 1e20), so bodies whose
labels hold a wider integer are not sent.

The photos are made here with random sizes and pixels (PNG and BMP), next to the smallest JPEG,
GIF and WebP files schemathesis itself ships, so each format the service reads is sent.
"""

import base64
import binascii
import json
import re
import struct
import zlib
from pathlib import Path

import schemathesis
from hypothesis import strategies as st
from schemathesis.core.file_samples import FILE_SAMPLES


def png(width: int, height: int, pixels: bytes) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(
        b"\x00" + pixels[y * width : (y + 1) * width] for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def bmp(width: int, height: int, pixels: bytes) -> bytes:
    stride = (width * 3 + 3) & ~3
    rows = b"".join(
        bytes(v for x in range(width) for v in (pixels[y * width + x],) * 3).ljust(stride, b"\x00")
        for y in range(height)
    )
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, len(rows), 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(info) + len(rows), 0, 0, 14 + len(info)) + info + rows


@st.composite
def drawn(draw, make):
    width = draw(st.integers(1, 48))
    height = draw(st.integers(1, 48))
    pixels = draw(st.binary(min_size=width * height, max_size=width * height))
    return make(width, height, pixels)


photos = st.one_of(
    drawn(png),
    drawn(bmp),
    st.sampled_from([FILE_SAMPLES["jpg"], FILE_SAMPLES["gif"], FILE_SAMPLES["webp"]]),
)

schemathesis.openapi.format("binary", photos)

# The document's own pattern for base64 photos (standard or URL-safe, padding optional,
# data: URL), read from it rather than copied.
DOCUMENT = Path(__file__).resolve().parent.parent / "src/http/assets/openapi.json"
BASE64 = re.compile(
    json.loads(DOCUMENT.read_text())["components"]["schemas"]["SubmissionJson"]["properties"][
        "image"
    ]["pattern"]
)
SIGNATURES = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"RIFF", b"BM", b"II*\x00", b"MM\x00*")
PHOTO = base64.b64encode(png(3, 2, bytes(range(0, 255, 42)))).decode()


def holds_photo(text: str) -> bool:
    data = text.split(",", 1)[1] if text.startswith("data:") else text
    data = data.replace("-", "+").replace("_", "/")
    try:
        decoded = base64.b64decode(data + "=" * (-len(data) % 4))
    except (binascii.Error, ValueError):
        return False
    return decoded.startswith(SIGNATURES)


def as_photo(value):
    if isinstance(value, str) and BASE64.match(value) and len(value) >= 2 and not holds_photo(value):
        return PHOTO
    return value


def wide_integer(value) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return not -(2**63) <= value < 2**63
    if isinstance(value, list):
        return any(wide_integer(item) for item in value)
    if isinstance(value, dict):
        return any(wide_integer(item) for item in value.values())
    return False


@schemathesis.hook
def filter_body(context, body) -> bool:
    return not (isinstance(body, dict) and wide_integer(body.get("labels")))


@schemathesis.hook
def before_call(context, case, kwargs):
    body = case.body
    if not isinstance(body, dict):
        return
    if case.media_type != "application/json":
        return
    if "image" in body:
        body["image"] = as_photo(body["image"])
    if isinstance(body.get("images"), list):
        body["images"] = [as_photo(item) for item in body["images"]]
