"""Kestra's internal storage on a local folder, and safe file names inside task working folders.

Kestra addresses execution files with URIs such as
``kestra:///company/team/my_flow/executions/<executionId>/tasks/<taskId>/<taskRunId>/out.csv``
(the namespace's dots become folders). :class:`Storage` maps those URIs onto a private folder beside the
database; :func:`safe_relative`, :func:`write_into` and :func:`files_matching` handle the relative
names a flow gives for ``inputFiles`` and ``outputFiles``.

Every name and URI comes from flow text, so each one is checked twice: lexically (no ``..``, ``.``,
empty segment, backslash or control character) and physically (the path, with every symlink
resolved, must stay inside its folder). The threat is a flow reaching outside its folder by name;
processes running as the same user can touch the files anyway, so no effort is spent on races
against them.

The modules: ``names`` (the lexical checks), ``uris`` (the ``kestra:///`` scheme and which files an
execution may read), ``folders`` (writing and walking inside a folder), ``globs`` (``outputFiles``)
``storage`` (the :class:`Storage` folder of execution files) and ``shared`` (the files a cluster's
machines share through its store, of which the folder is then a copy).
"""

from __future__ import annotations

from .folders import DIR_MODE, FILE_MODE, write_into
from .globs import files_matching
from .names import StorageError, safe_relative
from .shared import SharedFiles
from .storage import DEFAULT_MAX_BYTES, STORAGE_VARIABLE, Storage, open_storage, storage_root
from .uris import SCHEME, URI_PREFIX

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DIR_MODE",
    "FILE_MODE",
    "SCHEME",
    "STORAGE_VARIABLE",
    "URI_PREFIX",
    "SharedFiles",
    "Storage",
    "StorageError",
    "files_matching",
    "open_storage",
    "safe_relative",
    "storage_root",
    "write_into",
]
