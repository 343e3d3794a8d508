"""The reference reader for `cargo bench --bench corpus`: zxing-cpp on the same images.

Reads image paths, one per line, on stdin; writes one JSON line per image on stdout:
{"path": ..., "ms": ..., "codes": [{"format": ZXing name, "text": ...}]}. Each image is timed
from its bytes to its barcodes (decode to grayscale, then read), as the Rust side times it.
"""

import io
import json
import sys
import time

import zxingcpp
from PIL import Image

# zxing-cpp's format names, as ZXing (Java) and rxing spell them.
NAMES = {
    "Aztec": "AZTEC",
    "Codabar": "CODABAR",
    "Code39": "CODE_39",
    "Code93": "CODE_93",
    "Code128": "CODE_128",
    "DataMatrix": "DATA_MATRIX",
    "EAN8": "EAN_8",
    "EAN13": "EAN_13",
    "ITF": "ITF",
    "PDF417": "PDF_417",
    "QRCode": "QR_CODE",
    "MicroQRCode": "MICRO_QR_CODE",
    "UPCA": "UPC_A",
    "UPCE": "UPC_E",
    "DataBar": "RSS_14",
    "DataBarOmni": "RSS_14",
    "DataBarExpanded": "RSS_EXPANDED",
    "DataBarExp": "RSS_EXPANDED",
    "MaxiCode": "MAXICODE",
}


def normalised(barcode):
    """ZXing's conventions: Codabar without its start and stop characters."""
    name = NAMES.get(barcode.format.name, barcode.format.name)
    text = barcode.text
    if name == "CODABAR" and len(text) >= 2 and text[0] in "ABCD" and text[-1] in "ABCD":
        text = text[1:-1]
    return {"format": name, "text": text}


def main():
    for line in sys.stdin:
        path = line.rstrip("\n")
        if not path:
            continue
        with open(path, "rb") as file:
            data = file.read()
        started = time.perf_counter()
        try:
            image = Image.open(io.BytesIO(data))
            image.draft("L", image.size)
            codes = [normalised(b) for b in zxingcpp.read_barcodes(image.convert("L"))]
        except Exception as error:  # an unreadable image is a miss, as on the Rust side
            print(f"{path}: {error}", file=sys.stderr)
            codes = []
        ms = (time.perf_counter() - started) * 1000.0
        print(json.dumps({"path": path, "ms": ms, "codes": codes}), flush=True)


if __name__ == "__main__":
    main()
