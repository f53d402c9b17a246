"""Django's SQLite backend, except that the database file is made 0600 when it is opened.

In the embedded deployment the dev cluster's members are users of the same machine as the portal; the
database holds sessions, tokens and encrypted keys, so nobody but the portal may read it. SQLite gives
its -wal and -shm files the database file's mode, so this one chmod covers them.
"""

from __future__ import annotations

import os
from typing import Any

from django.db.backends.sqlite3 import base


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        connection = super().get_new_connection(conn_params)
        name = str(conn_params.get("database", ""))
        if name and name != ":memory:" and not name.startswith("file:") and os.path.exists(name):
            os.chmod(name, 0o600)
        return connection
