"""namespace.UploadFiles, DownloadFiles and DeleteFiles run as flows through a real engine, on the
namespace files of the flows folder (<flows>/_files/<namespace>), or, on a store that machines
share, of the internal storage the folder's files are published to."""

from __future__ import annotations

from pathlib import Path

import pytest

from tiercel.engine import Engine
from tiercel.engine.model import StateType
from tiercel.engine.tasks.namespace_store import namespace_files

from .helpers import flow, logs_of, one_run, run, running_engine

pytestmark = pytest.mark.asyncio


def _files(engine: Engine, namespace: str) -> dict[str, str]:
    """A namespace's files where the engine keeps them: its flows folder's `_files`, or the internal
    storage on a store that machines share."""
    files = namespace_files(engine.storage, engine.flows_dir)
    assert files is not None
    return {path: files.read_file(namespace, path).decode() for path in files.list_files(namespace)}


def _seed(tmp_path: Path, namespace: str, files: dict[str, str]) -> None:
    for name, text in files.items():
        target = tmp_path / "flows" / "_files" / namespace / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


async def test_upload_files_map_with_conflicts(tmp_path: Path) -> None:
    """UploadFilesTest (filesMap `/path/file.txt` with destination `/folder`): the file lands at
    /folder/path/file.txt; OVERWRITE replaces it, SKIP keeps it, ERROR fails the task."""
    upload = flow(
        """
        inputs:
          - id: text
            type: STRING
          - id: conflict
            type: STRING
        tasks:
          - id: make
            type: io.kestra.plugin.scripts.shell.Commands
            commands: ["printf '{{ inputs.text }}' > file.txt"]
            outputFiles: [file.txt]
          - id: upload
            type: io.kestra.plugin.core.namespace.UploadFiles
            namespace: io.kestra.target
            filesMap:
              /path/file.txt: "{{ outputs.make.outputFiles['file.txt'] }}"
            destination: /folder
            conflict: "{{ inputs.conflict }}"
        """
    )
    async with running_engine(tmp_path, upload) as engine:
        first = await run(engine, "ns", "f", {"text": "first", "conflict": "ERROR"})
        assert first.state.current is StateType.SUCCESS
        assert one_run(first, "upload").outputs == {}
        assert _files(engine, "io.kestra.target") == {"folder/path/file.txt": "first"}
        skipped = await run(engine, "ns", "f", {"text": "second", "conflict": "SKIP"})
        assert skipped.state.current is StateType.SUCCESS
        assert _files(engine, "io.kestra.target") == {"folder/path/file.txt": "first"}
        refused = await run(engine, "ns", "f", {"text": "third", "conflict": "ERROR"})
        assert refused.state.current is StateType.FAILED
        lines = [entry.message for entry in await logs_of(engine, refused.id)]
        assert any(
            "already exists in namespace 'io.kestra.target' and conflict is set to ERROR" in x for x in lines
        )
        replaced = await run(engine, "ns", "f", {"text": "fourth", "conflict": "OVERWRITE"})
        assert replaced.state.current is StateType.SUCCESS
        assert _files(engine, "io.kestra.target") == {"folder/path/file.txt": "fourth"}


async def test_upload_files_from_the_working_directory(tmp_path: Path) -> None:
    """UploadFiles' documented example (`files: ["glob:**/dbt/**"]` in a WorkingDirectory): the
    matching files keep their path below the working folder, under `destination`."""
    upload = flow(
        """
        tasks:
          - id: wdir
            type: io.kestra.plugin.core.flow.WorkingDirectory
            tasks:
              - id: make
                type: io.kestra.plugin.scripts.shell.Commands
                commands:
                  - mkdir -p project/dbt/models
                  - echo model > project/dbt/models/a.sql
                  - echo other > project/readme.md
              - id: upload
                type: io.kestra.plugin.core.namespace.UploadFiles
                namespace: "{{ flow.namespace }}"
                files:
                  - "glob:**/dbt/**"
                destination: code
        """
    )
    async with running_engine(tmp_path, upload) as engine:
        execution = await run(engine, "ns", "f")
        assert execution.state.current is StateType.SUCCESS
        assert _files(engine, "ns") == {"code/project/dbt/models/a.sql": "model\n"}


async def test_download_files_by_pattern(tmp_path: Path) -> None:
    """DownloadFilesTest: the files matching (a name matches at any depth, `**` everything) are put in
    the task's storage; `files` maps each path, with a leading slash, to its kestra:// URI."""
    download = flow(
        """
        tasks:
          - id: one
            type: io.kestra.plugin.core.namespace.DownloadFiles
            namespace: tutorial
            files: a.txt
          - id: all
            type: io.kestra.plugin.core.namespace.DownloadFiles
            namespace: tutorial
            files: ["**"]
            destination: out/
          - id: read
            type: io.kestra.plugin.core.debug.Return
            format: "{{ read(outputs.one.files['/sub/a.txt']) }}"
        """
    )
    _seed(tmp_path, "tutorial", {"sub/a.txt": "alpha", "b.csv": "beta"})
    async with running_engine(tmp_path, download) as engine:
        execution = await run(engine, "ns", "f")
        assert execution.state.current is StateType.SUCCESS
        one = one_run(execution, "one").outputs
        every = one_run(execution, "all").outputs
        assert one is not None and every is not None
        assert list(one["files"]) == ["/sub/a.txt"]
        assert sorted(every["files"]) == ["/b.csv", "/sub/a.txt"]
        assert every["files"]["/b.csv"].endswith("/out/b.csv")
        assert engine.storage.read_text(every["files"]["/b.csv"]) == "beta"
        assert one_run(execution, "read").outputs == {"value": "alpha"}


async def test_delete_files_and_empty_parent_folders(tmp_path: Path) -> None:
    """DeleteFilesTest: matching files go, the others stay; with `deleteParentFolder` the folders
    left empty go too."""
    delete = flow(
        """
        tasks:
          - id: csv
            type: io.kestra.plugin.core.namespace.DeleteFiles
            namespace: tutorial
            files: ["**.csv"]
          - id: deep
            type: io.kestra.plugin.core.namespace.DeleteFiles
            namespace: tutorial
            files: /deep/er/x.txt
            deleteParentFolder: true
        """
    )
    _seed(tmp_path, "tutorial", {"a.csv": "1", "sub/b.csv": "2", "keep.txt": "3", "deep/er/x.txt": "4"})
    async with running_engine(tmp_path, delete) as engine:
        execution = await run(engine, "ns", "f")
        assert execution.state.current is StateType.SUCCESS
        assert _files(engine, "tutorial") == {"keep.txt": "3"}
    if engine.storage.shared is None:  # folders of the flows folder (a shared storage holds files only)
        assert not (tmp_path / "flows" / "_files" / "tutorial" / "deep").exists()
        assert (tmp_path / "flows" / "_files" / "tutorial" / "sub").is_dir()


async def test_namespace_file_names_stay_inside_their_namespace(tmp_path: Path) -> None:
    """A filesMap target or a namespace that would leave the namespace folder fails the task."""
    upload = flow(
        """
        tasks:
          - id: make
            type: io.kestra.plugin.scripts.shell.Commands
            commands: ["printf secret > file.txt"]
            outputFiles: [file.txt]
          - id: escape
            type: io.kestra.plugin.core.flow.AllowFailure
            tasks:
              - id: upload
                type: io.kestra.plugin.core.namespace.UploadFiles
                namespace: ns
                filesMap:
                  /../../escaped.txt: "{{ outputs.make.outputFiles['file.txt'] }}"
          - id: outside
            type: io.kestra.plugin.core.flow.AllowFailure
            tasks:
              - id: download
                type: io.kestra.plugin.core.namespace.DownloadFiles
                namespace: ".."
                files: "**"
        """
    )
    async with running_engine(tmp_path, upload) as engine:
        execution = await run(engine, "ns", "f")
    assert one_run(execution, "upload").state.current is StateType.FAILED
    assert one_run(execution, "download").state.current is StateType.FAILED
    assert not (tmp_path / "flows" / "escaped.txt").exists()
    assert not (tmp_path / "escaped.txt").exists()
