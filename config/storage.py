"""Static files under hashed names, with DEBUG on too (`make demo` runs with DEBUG)."""

from __future__ import annotations

from whitenoise.storage import CompressedManifestStaticFilesStorage


class HashedStaticFilesStorage(CompressedManifestStaticFilesStorage):
    """WhiteNoise's compressed manifest storage. Django's hands out plain names while DEBUG is on; this
    one always links the hashed copy that collectstatic wrote, so the demo's pages are cached the way
    production's are (WhiteNoise marks hashed names immutable, with a year's max-age)."""

    def url(self, name: str | None, force: bool = False) -> str:
        return str(super().url(name, force=True))
