"""Jobs' stdout and stderr as stored by the worker (`JobLogChunk`s read over SFTP from byte offsets).

The worker's `read_logs` step writes chunks; pages, the API and Slack read them through these functions.
"""

from __future__ import annotations

import codecs

from scheduler.models import Job, JobLogChunk


def decode_complete(data: bytes) -> tuple[str, int]:
    """Decode the longest prefix that ends on a whole UTF-8 character (invalid bytes replaced).
    An incomplete character at the end waits for the next read, even after an invalid byte."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    text = decoder.decode(data, final=False)
    pending, _ = decoder.getstate()
    return text, len(data) - len(pending)


def log_text(job: Job, stream: str, offset: int = 0, limit: int = 1 << 20) -> tuple[str, int]:
    """A job's stored log from a byte offset: (text, next offset). Reads at most about `limit` bytes;
    an offset inside a multi-byte character starts at the next whole character."""
    raw = bytearray()
    end = offset
    for chunk in JobLogChunk.objects.filter(
        job=job, stream=stream, offset__gte=_chunk_start(job, stream, offset)
    ).order_by("offset"):
        if chunk.offset + chunk.size <= offset:
            continue
        data = bytes(chunk.data)
        raw += data[max(0, offset - chunk.offset) :]
        end = chunk.offset + chunk.size
        if len(raw) >= limit:
            break
    start = 0
    while start < len(raw) and start < 3 and 0x80 <= raw[start] <= 0xBF:
        start += 1  # continuation bytes of a character that began before the offset
    return bytes(raw[start:]).decode("utf-8", errors="replace"), max(end, offset)


def _chunk_start(job: Job, stream: str, offset: int) -> int:
    first = (
        JobLogChunk.objects.filter(job=job, stream=stream, offset__lte=offset)
        .order_by("-offset")
        .values_list("offset", flat=True)
        .first()
    )
    return first if first is not None else 0


def tail(job: Job, stream: str, lines: int = 200) -> str:
    """The last lines of a job's stored log (from its last few chunks)."""
    chunks = list(JobLogChunk.objects.filter(job=job, stream=stream).order_by("-offset")[:20])
    raw = b"".join(bytes(c.data) for c in reversed(chunks))
    return "\n".join(raw.decode("utf-8", errors="replace").splitlines()[-lines:])
