"""Opening a FITS file nobody vouches for, with its cost bounded before astropy parses it.

A few kilobytes of gzip can declare millions of rows or pixels, or decompress into millions of
header cards (astropy spent 1.9 s and 294 MB on a 32 MB header, measured on the 2-core
development machine). So, before astropy parses anything, the file's structure is walked from
the raw cards (:func:`_walk`), decompressing as it goes and keeping nothing:

- at most ``MAX_HDUS`` header-data units, ``MAX_HEADER_CARDS`` cards in all and no axis longer
  than ``MAX_AXIS`` (the 1,603 real survey files in ``../shared/data/spectra`` have at most 26
  units, 501 cards in one header and an axis of 93,816);
- every data unit inside the file, and the whole within what is left of the request's
  :class:`ByteBudget`.

Only then is the file inflated (no further than the budget) and handed to astropy, which reads
no more than those bytes. A hostile file is refused after decompressing up to the header that
gives it away, not the whole of it.

The readers (:mod:`app.tasks.spectra.files`) then check each layout's declared shape (rows,
pixels) from the headers before they touch its data.
"""

from __future__ import annotations

import io
import math
import zlib
from typing import Iterator

GZIP_MAGIC = b"\x1f\x8b"
FITS_BLOCK = 2880
CARD = 80
FITS_MAGIC = b"SIMPLE  ="
MAX_HDUS = 64
MAX_HEADER_CARDS = 10_000
MAX_AXIS = 1_000_000
PIECE = 1 << 20  # decompressed bytes read at a time by the structure walk


class SpectrumFileError(ValueError):
    """A file that is not a spectrum this service can read; the message says why, for the caller."""


class ByteBudget:
    """Bytes the FITS files of one request may hold once decompressed, spent file by file."""

    def __init__(self, total: int):
        self.total = total
        self.remaining = total

    def spend(self, size: int) -> None:
        if size > self.remaining:
            raise SpectrumFileError(self.refusal())
        self.remaining -= size

    def refusal(self) -> str:
        spent = self.total - self.remaining
        if spent:
            return (f"would take the request past {self.total:,} bytes of FITS data once decompressed "
                    f"({spent:,} already used by the files before it); send it in another request")
        return f"is larger than {self.total:,} bytes once decompressed"


def _pieces(data: bytes) -> Iterator[bytes]:
    """The file's bytes, gunzipped if need be (several members too), at most ``PIECE`` at a time."""
    if data[:2] != GZIP_MAGIC:
        yield from (data[start : start + PIECE] for start in range(0, len(data), PIECE))
        return
    corrupt = SpectrumFileError("is gzip-compressed but the compressed data are corrupt or truncated")
    pending = data
    while pending:
        inflater = zlib.decompressobj(wbits=31)
        while not inflater.eof:
            try:
                piece = inflater.decompress(pending, PIECE)
            except zlib.error:
                raise corrupt from None
            pending = inflater.unconsumed_tail
            if not piece and not pending:  # the input ran out before the end of the member
                raise corrupt
            yield piece
        rest = inflater.unused_data  # a further gzip member, or trailing bytes (ignored)
        pending = rest if rest[:2] == GZIP_MAGIC else b""


def _inflate(data: bytes, budget: ByteBudget) -> bytes:
    """Gunzip ``data`` without ever holding more than the budget allows."""
    out = bytearray()
    for piece in _pieces(data):
        out += piece
        if len(out) > budget.remaining:
            raise SpectrumFileError(budget.refusal())
    budget.spend(len(out))
    return bytes(out)


class _Forward:
    """A file's (decompressed) bytes, read forward once in small pieces and not kept."""

    def __init__(self, data: bytes):
        self._pieces = _pieces(data)
        self._buffer = bytearray()
        self.position = 0

    def read(self, size: int) -> bytes:
        while len(self._buffer) < size and (piece := next(self._pieces, None)) is not None:
            self._buffer += piece
        piece = bytes(self._buffer[:size])
        del self._buffer[:size]
        self.position += len(piece)
        return piece

    def skip(self, size: int) -> bool:
        """Skip ``size`` bytes; False if the file ends first."""
        while size:
            step = len(self.read(min(size, PIECE)))
            if not step:
                return False
            size -= step
        return True


def _card_int(card: bytes) -> int:
    return int(card[10:].split(b"/", 1)[0].strip())


def _walk(data: bytes, budget: ByteBudget) -> None:
    """Check the structure from the raw cards, decompressing as it goes without keeping the bytes:
    bounded units, cards and axes, every data unit inside the file, and within the budget."""
    unreadable = SpectrumFileError("is not a readable FITS file (corrupt or truncated header or data)")
    truncated = SpectrumFileError("is truncated: its headers declare more than the file holds")
    stream = _Forward(data)
    units, cards = 0, 0
    card = stream.read(CARD)
    if not card.startswith(FITS_MAGIC):
        raise SpectrumFileError("is not a FITS file (it does not start with a SIMPLE card)")
    while True:
        units += 1
        if units > MAX_HDUS:
            raise SpectrumFileError(f"holds more than {MAX_HDUS} header-data units; survey spectra hold far fewer")
        values: dict[bytes, int] = {}
        while True:
            if len(card) < CARD:
                raise truncated
            cards += 1
            if cards > MAX_HEADER_CARDS:
                raise SpectrumFileError(f"has more than {MAX_HEADER_CARDS:,} header cards; survey spectra have a few hundred")
            keyword = card[:8].rstrip()
            if keyword == b"END":
                break
            if keyword in (b"BITPIX", b"NAXIS", b"PCOUNT", b"GCOUNT", b"TFIELDS") or (keyword.startswith(b"NAXIS") and keyword[5:].isdigit()):
                try:
                    values[keyword] = _card_int(card)
                except ValueError:
                    raise unreadable from None
            card = stream.read(CARD)
        naxis = values.get(b"NAXIS", 0)
        if b"BITPIX" not in values or not 0 <= naxis <= 999:
            raise unreadable
        axes = [values.get(b"NAXIS%d" % i, -1) for i in range(1, naxis + 1)]
        if any(a < 0 for a in axes) or values.get(b"PCOUNT", 0) < 0 or values.get(b"GCOUNT", 1) < 0:
            raise unreadable
        if not 0 <= values.get(b"TFIELDS", 0) <= 999:  # the standard's bound; astropy would make that many columns
            raise unreadable
        if max(axes, default=0) > MAX_AXIS:
            raise SpectrumFileError(f"declares an axis of {max(axes):,} (rows or pixels); survey spectra have fewer than {MAX_AXIS:,}")
        size = abs(values[b"BITPIX"]) // 8 * values.get(b"GCOUNT", 1) * (values.get(b"PCOUNT", 0) + math.prod(axes)) if naxis else 0
        padded = -(-size // FITS_BLOCK) * FITS_BLOCK
        if stream.position + -stream.position % FITS_BLOCK + padded > budget.remaining:
            raise SpectrumFileError(budget.refusal())
        if not stream.skip(-stream.position % FITS_BLOCK + padded):
            raise truncated
        card = stream.read(CARD)
        if card[:8] != b"XTENSION":
            break
    while card:  # what follows the last unit: nothing but padding, and within the budget too
        if card.strip(b"\0 "):
            raise unreadable
        if stream.position > budget.remaining:
            raise SpectrumFileError(budget.refusal())
        card = stream.read(PIECE)


def open_fits(data: bytes, budget: ByteBudget):
    """astropy's HDU list of ``data`` (gzip-compressed or not), once the file is known to be cheap to parse."""
    from astropy.io import fits

    _walk(data, budget)  # first, without keeping what it decompresses
    if data[:2] == GZIP_MAGIC:
        data = _inflate(data, budget)
    else:
        budget.spend(len(data))
    if len(data) % FITS_BLOCK:  # the standard pads every file to whole blocks; a cut file is not
        raise SpectrumFileError(f"is truncated or padded wrongly: {len(data):,} bytes is not a whole number of 2,880-byte FITS blocks")
    unreadable = SpectrumFileError("is not a readable FITS file (corrupt or truncated header or data)")
    try:
        # Every header is read now, data units only when a reader asks for them.
        hdus = fits.open(io.BytesIO(data), memmap=False, lazy_load_hdus=False, ignore_missing_simple=False)
        complete = _complete(hdus, data)
    except Exception:  # astropy raises OSError, ValueError, TypeError, … for broken files
        raise unreadable from None
    if not complete:
        hdus.close()
        raise unreadable
    return hdus


def _complete(hdus, data: bytes) -> bool:
    """Whether astropy saw every data unit inside the file and nothing but padding after the last.

    astropy reads on past a truncated data unit, and drops an extension whose header it cannot
    parse, with a warning only; warnings are no signal in a threaded server (catching them is
    process-wide), so the layout is checked instead.
    """
    end = 0
    for hdu in hdus:
        if not hasattr(hdu, "fileinfo"):  # astropy's placeholder for an HDU it could not parse
            return False
        start = hdu.fileinfo()["datLoc"]
        if start + hdu.size > len(data):
            return False
        end = start + -(-hdu.size // FITS_BLOCK) * FITS_BLOCK
    return not data[end:].strip(b"\0 ")


def warm_up() -> None:
    """Import astropy's FITS reader and parse a file once: done by the first upload instead, it
    holds the interpreter for about 0.2 s, and every request of the server waits."""
    cards = b"".join(c.ljust(CARD) for c in (b"SIMPLE  =                    T", b"BITPIX  =                    8", b"NAXIS   =                    0", b"END"))
    open_fits(cards.ljust(FITS_BLOCK), ByteBudget(FITS_BLOCK)).close()
